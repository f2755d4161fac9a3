"""Retries (SPEC §13): the timing rule, same-slot attempts holding the claim, the next slot's limit.

Time is a :class:`cron.retry.FakeClock` installed through ``scheduler.set_retry_timing``:
backoffs pass at once in the clock's time, and no test sleeps through one. The
actions are real ``/bin/sh`` processes counting their own attempts in a file.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cron import executions, jobs, scheduler
from cron.claim import parse_ts
from cron.errors import ConfigError, JobValueError
from cron.retry import (
    FakeClock,
    RetryPolicy,
    RetryTiming,
    RetryVerdict,
    backoff_delay,
    parse_duration,
    plan_retry,
    policy_for,
    validate_retry,
)
from cron.store import set_store
from tests.conftest import write_config

T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    set_store(None)
    yield
    scheduler.wait_for_running(25)
    scheduler.set_retry_timing(None)
    set_store(None)


def _clock(start: datetime = T0, on_sleep: Any = None, seed: int = 7) -> FakeClock:
    clock = FakeClock(start, on_sleep)
    scheduler.set_retry_timing(RetryTiming(clock, random.Random(seed)))
    return clock


def _flaky(tmp_path: Path, failures: int) -> str:
    """A command failing its first ``failures`` runs (it counts them in a file), then passing."""
    counter = tmp_path / "count"
    return (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; "
        f'echo "attempt $n"; [ "$n" -gt {failures} ]'
    )


def _rows(job_id: str) -> list[dict[str, Any]]:
    rows = executions.list_executions(job_id, limit=None, attempts=True)
    return sorted(rows, key=lambda r: (r["scheduled_at"], r["attempt"]))


# -- the timing rule ------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 6, 10])
def test_backoff_doubles_within_ten_percent_jitter(attempt: int) -> None:
    policy = RetryPolicy(max=10, backoff=30, max_backoff=10**9)
    base = 30 * 2 ** (attempt - 1)
    delays = [backoff_delay(attempt, policy, random.Random(seed)) for seed in range(300)]
    assert all(0.9 * base <= d <= 1.1 * base for d in delays), (min(delays), max(delays))
    # The jitter is real: the spread covers most of the +-10 % band, both sides.
    assert min(delays) < 0.92 * base and max(delays) > 1.08 * base


def test_backoff_never_exceeds_max_backoff() -> None:
    policy = RetryPolicy(max=50, backoff=30, max_backoff=100)
    for attempt in range(1, 60):
        for seed in range(20):
            assert backoff_delay(attempt, policy, random.Random(seed)) <= 100
    # 30 * 2**2 = 120 > 100: capped, jitter included.
    assert backoff_delay(3, policy, random.Random(1)) == 100
    assert backoff_delay(1000, policy, random.Random(1)) == 100
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(0, policy, random.Random(1))


def test_plan_retry_verdicts() -> None:
    policy = RetryPolicy(max=2, backoff=10, max_backoff=3600)
    later = T0 + timedelta(hours=1)

    def plan(
        status: str, attempt: int, nxt: datetime | None = later, pol: RetryPolicy = policy
    ) -> Any:
        return plan_retry(
            status=status, attempt=attempt, policy=pol, now=T0, next_slot=nxt, rng=random.Random(3)
        )

    assert plan("ok", 1).verdict is RetryVerdict.NOT_A_FAILURE
    assert plan("interrupted", 1).verdict is RetryVerdict.NOT_A_FAILURE
    assert plan("error", 1, pol=RetryPolicy(max=0)).verdict is RetryVerdict.NO_POLICY
    first = plan("error", 1)
    assert first.verdict is RetryVerdict.RETRY and first.attempt == 2
    assert first.at is not None and 9 <= (first.at - T0).total_seconds() <= 11
    assert plan("timeout", 2).verdict is RetryVerdict.RETRY
    assert plan("error", 3).verdict is RetryVerdict.EXHAUSTED
    # Not before the next slot: not run. A start exactly at the slot counts as "not before".
    assert plan("error", 1, nxt=T0 + timedelta(seconds=5)).verdict is RetryVerdict.PAST_NEXT_SLOT
    exact = plan("error", 1)
    assert exact.at is not None
    assert plan("error", 1, nxt=exact.at).verdict is RetryVerdict.PAST_NEXT_SLOT
    assert plan("error", 1, nxt=None).verdict is RetryVerdict.RETRY  # one-shot: no limit


def test_policy_merges_job_over_config_over_defaults() -> None:
    cfg = {"cron": {"retry": {"max": 2, "backoff": 5, "max_backoff": 60}}}
    assert policy_for({}, None) == RetryPolicy(0, 30, 3600)
    assert policy_for({}, cfg) == RetryPolicy(2, 5, 60)
    assert policy_for({"retry": {"max": 4}}, cfg) == RetryPolicy(4, 5, 60)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"max": -1}, "retry.max"),
        ({"max": 1.5}, "retry.max"),
        ({"max": True}, "retry.max"),
        ({"backoff": "30s"}, "retry.backoff"),
        ({"max_backoff": -3}, "retry.max_backoff"),
        ({"tries": 3}, "retry"),
        ("3", "retry"),
        ({"max": 101}, "retry.max"),
    ],
)
def test_bad_retry_values_name_the_key(value: object, field: str) -> None:
    with pytest.raises(JobValueError) as info:
        validate_retry(value)
    assert info.value.field == field


def test_parse_duration() -> None:
    assert parse_duration("30") == 30
    assert parse_duration("30s") == 30
    assert parse_duration("2m") == 120
    assert parse_duration("1h30m") == 5400
    for bad in ("soon", "-5", "3 parsecs"):
        with pytest.raises(JobValueError):
            parse_duration(bad)


def test_config_retry_defaults_and_validation(home: Path) -> None:
    from cron.config import load_config

    assert load_config()["cron"]["retry"] == {"max": 0, "backoff": 30, "max_backoff": 3600}
    write_config(home, "cron:\n  retry: {max: 2}\n")
    assert load_config()["cron"]["retry"] == {"max": 2, "backoff": 30, "max_backoff": 3600}
    for text, key in (
        ("cron:\n  retry: {max: -1}\n", "cron.retry.max"),
        ("cron:\n  retry: {backoff: soon}\n", "cron.retry.backoff"),
        ("cron:\n  retry: {tries: 3}\n", "cron.retry.tries"),
    ):
        write_config(home, text)
        with pytest.raises(ConfigError) as info:
            load_config()
        assert info.value.where == key


def test_jobs_without_retry_store_no_field(home: Path) -> None:
    plain = jobs.create_job("every 5m", "true", now=T0)
    assert "retry" not in plain
    own = jobs.create_job("every 5m", "true", retry={"max": 2}, now=T0)
    assert own["retry"] == {"max": 2}
    assert jobs.update_job(own["id"], retry=None, now=T0).get("retry") is None
    assert "retry" not in (jobs.get_job(own["id"]) or {})


# -- same slot, claim held --------------------------------------------------------------------


def test_failed_slot_is_retried_for_the_same_slot_holding_its_claim(
    home: Path, tmp_path: Path
) -> None:
    job = jobs.create_job(
        "every 5m", _flaky(tmp_path, failures=2), retry={"max": 3}, now=T0 - timedelta(minutes=5)
    )
    seen: list[dict[str, Any]] = []

    def during_backoff(clock: FakeClock, seconds: float) -> None:
        now = clock.now()
        current = jobs.get_job(job["id"])
        assert current is not None
        seen.append(dict(current["fire_claim"]))
        # The claim is held: neither a tick nor a forced run starts a second run.
        assert jobs.claim_job_for_fire(job["id"], now=now, force=True) is None
        assert scheduler.tick(now=now) == 0

    clock = _clock(on_sleep=during_backoff)
    due = parse_ts(job["next_run_at"])
    assert due is not None
    clock.set(due)
    assert scheduler.tick(now=due) == 1

    rows = _rows(job["id"])
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "error"), (2, "error"), (3, "ok")]
    assert {r["scheduled_at"] for r in rows} == {job["next_run_at"]}
    assert len({r["id"] for r in rows}) == 3
    assert "retry 1 of 3 at" in rows[0]["error"] and "retry 2 of 3 at" in rows[1]["error"]
    # backoff * 2**(k-1), +-10 %: ~30 s, then ~60 s.
    assert len(clock.slept) == 2
    assert 27 <= clock.slept[0] <= 33 and 54 <= clock.slept[1] <= 66
    assert [c["attempt"] for c in seen] == [2, 3]
    assert seen[0]["token"] == rows[1]["id"] and seen[1]["token"] == rows[2]["id"]
    final = jobs.get_job(job["id"])
    assert final is not None
    assert final["fire_claim"] is None and final["last_status"] == "ok"
    assert final["failure_streak"] == 0
    assert final["repeat"]["completed"] == 1  # one slot, however many attempts


def test_run_one_job_retries_in_the_callers_thread(home: Path, tmp_path: Path) -> None:
    job = jobs.create_job(
        "every 1h", _flaky(tmp_path, failures=1), retry={"max": 1, "backoff": 5}, now=T0
    )
    clock = _clock()
    token = jobs.claim_job_for_fire(job["id"], force=True, now=T0)
    assert token is not None
    claimed = jobs.get_job(job["id"])
    assert claimed is not None
    assert scheduler.run_one_job(claimed) is True
    assert [(r["attempt"], r["status"]) for r in _rows(job["id"])] == [(1, "error"), (2, "ok")]
    assert len(clock.slept) == 1 and 4.5 <= clock.slept[0] <= 5.5


def test_retries_exhausted_end_the_slot_failed_once(home: Path, tmp_path: Path) -> None:
    job = jobs.create_job(
        "every 5m",
        _flaky(tmp_path, failures=99),
        retry={"max": 2, "backoff": 10},
        now=T0 - timedelta(minutes=5),
    )
    clock = _clock()
    due = parse_ts(job["next_run_at"])
    assert due is not None
    clock.set(due)
    assert scheduler.tick(now=due) == 1
    rows = _rows(job["id"])
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "error"), (2, "error"), (3, "error")]
    assert "no retry left (2 of 2 used)" in rows[2]["error"]
    after = jobs.get_job(job["id"])
    assert after is not None
    assert after["failure_streak"] == 1  # a failed slot, not three failed attempts
    assert after["fire_claim"] is None and after["last_status"] == "error"
    assert "no retry left" in after["last_error"]


def test_failure_streak_counts_slots_not_attempts(home: Path, tmp_path: Path) -> None:
    # Slot 1: attempts 1-3 fail (3 runs). Slot 2: attempt 1 fails, attempt 2 (run 5) passes.
    counter = tmp_path / "count"
    command = (
        f'n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; [ "$n" -ge 5 ]'
    )
    job = jobs.create_job(
        "every 5m", command, retry={"max": 2, "backoff": 10}, now=T0 - timedelta(minutes=5)
    )
    clock = _clock()
    streaks = []
    for _ in range(2):
        current = jobs.get_job(job["id"])
        assert current is not None
        due = parse_ts(current["next_run_at"])
        assert due is not None
        clock.set(due)
        assert scheduler.tick(now=clock.now()) == 1
        after = jobs.get_job(job["id"])
        assert after is not None
        streaks.append(after["failure_streak"])
    assert streaks == [1, 0]
    assert [(r["attempt"], r["status"]) for r in _rows(job["id"])] == [
        (1, "error"),
        (2, "error"),
        (3, "error"),
        (1, "error"),
        (2, "ok"),
    ]


# -- the next slot's limit --------------------------------------------------------------------


def test_retry_past_the_next_slot_is_not_run(home: Path, tmp_path: Path) -> None:
    # every 1m, backoff 120 s: the retry would start after the next slot.
    job = jobs.create_job(
        "every 1m",
        _flaky(tmp_path, failures=1),
        retry={"max": 3, "backoff": 120},
        now=T0 - timedelta(minutes=1),
    )
    clock = _clock()
    first = parse_ts(job["next_run_at"])
    assert first is not None
    clock.set(first)
    assert scheduler.tick(now=first) == 1
    assert clock.slept == []  # nothing waited
    [row] = _rows(job["id"])
    assert (row["attempt"], row["status"]) == (1, "error")
    assert "retry 1 of 3 not run" in row["error"] and "not before the next slot" in row["error"]
    after = jobs.get_job(job["id"])
    assert after is not None
    assert after["fire_claim"] is None and after["failure_streak"] == 1
    # The next slot fires normally, as a first attempt.
    second = parse_ts(after["next_run_at"])
    assert second == first + timedelta(minutes=1)
    clock.set(second)
    assert scheduler.tick(now=second) == 1
    rows = _rows(job["id"])
    assert [(r["scheduled_at"], r["attempt"], r["status"]) for r in rows] == [
        (after["last_scheduled_at"], 1, "error"),
        (second.isoformat(), 1, "ok"),
    ]


def test_retry_woken_after_the_next_slot_does_not_start(home: Path, tmp_path: Path) -> None:
    # The backoff fits, but the wait ends late (the clock jumps past the next slot).
    job = jobs.create_job(
        "every 10m",
        _flaky(tmp_path, failures=1),
        retry={"max": 2, "backoff": 30},
        now=T0 - timedelta(minutes=10),
    )
    due = parse_ts(job["next_run_at"])
    assert due is not None
    nxt = due + timedelta(minutes=10)
    clock = _clock(on_sleep=lambda c, s: c.set(nxt + timedelta(seconds=1)))
    clock.set(due)
    assert scheduler.tick(now=due) == 1
    rows = _rows(job["id"])
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "error"), (2, "skipped")]
    assert "next slot came before it could start" in rows[1]["error"]
    assert rows[1]["started_at"] is None  # it never ran
    after = jobs.get_job(job["id"])
    assert after is not None
    assert after["fire_claim"] is None and after["last_status"] == "error"
    assert after["failure_streak"] == 1
    assert scheduler.tick(now=clock.now()) == 1  # the next slot fires normally
    assert (tmp_path / "count").read_text().strip() == "2"


def test_job_paused_during_backoff_does_not_retry(home: Path, tmp_path: Path) -> None:
    job = jobs.create_job(
        "every 10m",
        _flaky(tmp_path, failures=1),
        retry={"max": 2, "backoff": 30},
        now=T0 - timedelta(minutes=10),
    )
    clock = _clock(on_sleep=lambda c, s: jobs.pause_job(job["id"], now=c.now()))
    due = parse_ts(job["next_run_at"])
    assert due is not None
    clock.set(due)
    assert scheduler.tick(now=due) == 1
    rows = _rows(job["id"])
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "error"), (2, "skipped")]
    assert "paused" in rows[1]["error"]
    after = jobs.get_job(job["id"])
    assert after is not None
    assert after["state"] == "paused" and after["fire_claim"] is None
    assert (tmp_path / "count").read_text().strip() == "1"


@pytest.mark.usefixtures("file_store")
def test_an_older_ledger_gains_the_attempt_column(home: Path) -> None:
    """A ledger written before retries (no ``attempt``, no ``pgid``) is migrated in place;
    its rows read as first attempts. About the SQLite ledger file: no PostgreSQL ledger
    predates retries."""
    import sqlite3

    from cron.store import get_store

    db = get_store().ledger_path()
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE executions (id TEXT PRIMARY KEY, job_id TEXT NOT NULL, job_name TEXT, "
        "scheduled_at TEXT, claimed_at TEXT, started_at TEXT, finished_at TEXT, "
        "status TEXT NOT NULL, source TEXT, owner TEXT, error TEXT, output_path TEXT)"
    )
    conn.execute(
        "INSERT INTO executions (id, job_id, status, finished_at) "
        "VALUES ('old', 'j1', 'ok', '2026-01-01T00:00:00+00:00')"
    )
    conn.commit()
    conn.close()
    [row] = executions.list_executions("j1", attempts=True)
    assert row["id"] == "old" and row["attempt"] == 1
    have = {r[1] for r in sqlite3.connect(db).execute("PRAGMA table_info(executions)")}
    assert {"attempt", "pgid", "pgid_start"} <= have


def test_a_tick_finding_the_job_due_during_a_backoff_records_skipped(
    home: Path, tmp_path: Path
) -> None:
    # every 2m: the next slot is 120 s on, within the claim's 300 s TTL as seen from there.
    job = jobs.create_job(
        "every 2m",
        _flaky(tmp_path, failures=1),
        retry={"max": 1, "backoff": 30},
        now=T0 - timedelta(minutes=2),
    )
    due = parse_ts(job["next_run_at"])
    assert due is not None
    nxt = due + timedelta(minutes=2)
    ticked: list[int] = []

    def overlapping_tick(clock: FakeClock, seconds: float) -> None:
        # Another node whose clock is ahead ticks at the next slot: the held claim wins.
        ticked.append(scheduler.tick(now=nxt))

    clock = _clock(on_sleep=overlapping_tick)
    clock.set(due)
    assert scheduler.tick(now=due) == 1
    assert ticked == [0]
    rows = _rows(job["id"])
    assert [(r["scheduled_at"], r["attempt"], r["status"]) for r in rows] == [
        (due.isoformat(), 1, "error"),
        (due.isoformat(), 2, "ok"),
        (nxt.isoformat(), 1, "skipped"),
    ]
    assert "overlap" in rows[2]["error"]


def test_a_retry_attempt_counts_in_cronkit_retries_total(home: Path, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families
    from starlette.testclient import TestClient

    from cron import webhook

    client = TestClient(webhook.create_app())  # owns the Metrics the hooks report to
    job = jobs.create_job(
        "every 1h", _flaky(tmp_path, failures=2), retry={"max": 2, "backoff": 5}, now=T0
    )
    _clock()
    assert jobs.claim_job_for_fire(job["id"], force=True, now=T0) is not None
    claimed = jobs.get_job(job["id"])
    assert claimed is not None and scheduler.run_one_job(claimed) is True
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    [total] = [
        s.value for s in families["cronkit_retries"].samples if s.name == "cronkit_retries_total"
    ]
    assert total == 2  # attempts 2 and 3 of the slot
