"""``CronScheduler.fire_due``: claim through the compare-and-set, re-read, run — or do nothing."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from cron import executions, jobs
from cron.scheduler_provider import CronScheduler, InProcessCronScheduler
from tests.phase4._support import count_lines, due_job


class AcmeProvider(CronScheduler):
    """An external provider: fire_due is all it uses."""

    @property
    def name(self) -> str:
        return "acme"

    def start(
        self,
        stop_event: threading.Event,
        *,
        adapters: Any = None,
        loop: Any = None,
        interval: float = 60,
    ) -> None:
        return None


@pytest.fixture
def counted(home: Path, tmp_path: Path) -> tuple[dict[str, Any], Path]:
    count = tmp_path / "count.txt"
    return due_job(count), count


def test_claim_won_runs_exactly_once(counted: tuple[dict[str, Any], Path]) -> None:
    job, count = counted
    slot = job["next_run_at"]

    assert InProcessCronScheduler().fire_due(job["id"], scheduled_at=slot) is True

    assert count_lines(count) == 1
    rows = executions.list_executions(job["id"])
    assert len(rows) == 1
    assert rows[0]["status"] == "ok"
    assert rows[0]["source"] == "builtin"
    assert rows[0]["scheduled_at"] == slot
    after = jobs.get_job(job["id"])
    assert after is not None
    assert after["fire_claim"] is None
    assert after["last_status"] == "ok"
    assert after["next_run_at"] > slot
    # The slot is spent: firing it again is a duplicate.
    assert InProcessCronScheduler().fire_due(job["id"], scheduled_at=slot) is False
    assert count_lines(count) == 1
    assert len(executions.list_executions(job["id"])) == 1


def test_ledger_source_names_the_provider(counted: tuple[dict[str, Any], Path]) -> None:
    job, count = counted
    assert AcmeProvider().fire_due(job["id"]) is True
    assert count_lines(count) == 1
    [row] = executions.list_executions(job["id"])
    assert row["source"] == "acme"
    assert row["status"] == "ok"


def test_manual_claim_is_recorded_as_manual(counted: tuple[dict[str, Any], Path]) -> None:
    job, _ = counted
    token = jobs.claim_job_for_fire(job["id"])
    assert token is not None
    assert executions.get_execution(token)["source"] == "manual"  # type: ignore[index]


def test_claim_lost_to_a_live_claim_runs_nothing(counted: tuple[dict[str, Any], Path]) -> None:
    job, count = counted
    other = jobs.claim_job_for_fire(job["id"], source="manual")
    assert other is not None
    before = jobs.get_job(job["id"])

    assert InProcessCronScheduler().fire_due(job["id"]) is False

    assert count_lines(count) == 0
    assert jobs.get_job(job["id"]) == before  # a lost claim changes nothing
    rows = executions.list_executions(job["id"])
    assert [(r["id"], r["status"]) for r in rows] == [(other, "claimed")]


@pytest.mark.parametrize("case", ["not_due", "paused", "stale_slot", "unknown_job"])
def test_claim_lost_for_every_reason_runs_nothing(home: Path, tmp_path: Path, case: str) -> None:
    count = tmp_path / "count.txt"
    if case == "not_due":
        job = jobs.create_job("every 1h", f"echo fired >> '{count}'")
        job_id, slot = job["id"], None
    elif case == "paused":
        job = due_job(count)
        jobs.pause_job(job["id"])
        job_id, slot = job["id"], None
    elif case == "stale_slot":
        job = due_job(count)
        job_id = job["id"]
        # One period before the due slot: already fired or superseded.
        slot = jobs.get_job(job_id)["created_at"]  # type: ignore[index]
    else:
        job_id, slot = "0123456789ab", None
    before = jobs.list_jobs()

    assert InProcessCronScheduler().fire_due(job_id, scheduled_at=slot) is False

    assert count_lines(count) == 0
    assert jobs.list_jobs() == before
    assert executions.list_executions(job_id) == []


def test_job_removed_between_claim_and_run(
    counted: tuple[dict[str, Any], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real claim wins, then the job is really removed before fire_due re-reads it."""
    job, count = counted
    # The seam every outside fire claims through (cron.scheduler.fire_job).
    real_claim = jobs.claim_job_for_fire_ex
    tokens: list[str | None] = []

    def claim_then_remove(job_id: str, **kwargs: Any) -> Any:
        outcome = real_claim(job_id, **kwargs)
        tokens.append(outcome.token)
        assert jobs.remove_job(job_id) is True
        return outcome

    monkeypatch.setattr(jobs, "claim_job_for_fire_ex", claim_then_remove)

    assert InProcessCronScheduler().fire_due(job["id"]) is False

    [token] = tokens
    assert token is not None
    assert count_lines(count) == 0
    assert jobs.get_job(job["id"]) is None
    row = executions.get_execution(token)
    assert row is not None
    assert row["status"] == "skipped"
    assert row["started_at"] is None  # never marked running: nothing ran


def test_concurrent_fire_due_runs_once(counted: tuple[dict[str, Any], Path]) -> None:
    job, count = counted
    n = 6
    barrier = threading.Barrier(n)
    results: list[bool] = []
    lock = threading.Lock()

    def fire() -> None:
        barrier.wait()
        ran = InProcessCronScheduler().fire_due(job["id"], scheduled_at=job["next_run_at"])
        with lock:
            results.append(ran)

    threads = [threading.Thread(target=fire) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [False] * (n - 1) + [True]
    assert count_lines(count) == 1
    assert [r["status"] for r in executions.list_executions(job["id"])] == ["ok"]
