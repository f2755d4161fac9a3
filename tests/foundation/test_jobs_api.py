"""The SPEC §3 module API (``cron.jobs``): CRUD, the claim rules, marking, bad input.

Every "returns None" / "raises" case also proves that nothing was written:
the store keeps its state (``jobs.json`` its bytes and mtime; a database its
rows) and the ledger gains no row.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cron import executions, jobs
from cron.errors import (
    ActionError,
    CronkitError,
    JobNotFoundError,
    JobValueError,
    ScheduleError,
)
from cron.schedule import to_iso
from cron.store import get_store, set_store
from tests.characterization.actions import OK
from tests.conftest import write_config
from tests.support.stores import disk_jobs, edit_job, is_json, snapshot, store_exists, store_file

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
M = timedelta(minutes=1)
S = timedelta(seconds=1)
PY_OK = {"kind": "python", "target": OK}

SPEC_FIELDS = {
    "id",
    "name",
    "schedule",
    "action",
    "repeat",
    "enabled",
    "state",
    "paused_at",
    "paused_reason",
    "created_at",
    "next_run_at",
    "last_run_at",
    "last_status",
    "last_error",
    "failure_streak",
    "fire_claim",
}


@pytest.fixture(autouse=True)
def default_store() -> Iterator[None]:
    set_store(None)
    yield
    set_store(None)


@pytest.fixture
def changes() -> Iterator[list[int]]:
    """Counts ``on_jobs_changed`` notifications in this process."""
    calls: list[int] = []

    def listener() -> None:
        calls.append(1)

    jobs.add_change_listener(listener)
    yield calls
    jobs.remove_change_listener(listener)


class Frozen:
    """The store and the ledger, to prove a call changed neither."""

    def __init__(self) -> None:
        self.exists = store_exists()
        self.state = snapshot()
        # A rewrite of jobs.json with the same bytes is still a write.
        self.mtime = os.stat(store_file()).st_mtime_ns if self.exists and is_json() else None
        # Only read a ledger that exists: opening one creates it (on sqlite: the store file).
        self.ledger = get_store().ledger()
        self.rows = executions.list_executions(limit=None) if self.ledger.exists() else []

    def assert_unchanged(self) -> None:
        assert store_exists() == self.exists
        assert snapshot() == self.state
        if self.mtime is not None:
            assert os.stat(store_file()).st_mtime_ns == self.mtime
        rows = executions.list_executions(limit=None) if self.ledger.exists() else []
        assert rows == self.rows


def unchanged(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` and assert it left the store and the ledger untouched; return its result."""
    frozen = Frozen()
    result = fn()
    frozen.assert_unchanged()
    return result


def raises_unchanged(exc: type[BaseException], fn: Callable[[], Any]) -> BaseException:
    frozen = Frozen()
    with pytest.raises(exc) as info:
        fn()
    frozen.assert_unchanged()
    assert "\n" not in str(info.value)
    return info.value


def on_disk(job_id: str) -> dict[str, Any]:
    (found,) = [j for j in disk_jobs() or [] if j["id"] == job_id]
    return found


def rows(job_id: str, status: str | None = None) -> list[dict[str, Any]]:
    return [
        r
        for r in executions.list_executions(job_id, limit=None)
        if status is None or r["status"] == status
    ]


# -- create / get / list ---------------------------------------------------------------


def test_create_cron_text_and_command_string(home: Path, changes: list[int]) -> None:
    job = jobs.create_job("0 9 * * 1-5", "echo hi", now=T0)
    assert re.fullmatch(r"[0-9a-f]{12}", job["id"])
    assert SPEC_FIELDS <= set(job)
    assert job["schedule"] == {"kind": "cron", "expr": "0 9 * * 1-5", "display": "0 9 * * 1-5"}
    assert job["action"] == {"kind": "command", "command": "echo hi"}
    assert job["repeat"] == {"times": None, "completed": 0}
    assert (job["enabled"], job["state"], job["fire_claim"], job["failure_streak"]) == (
        True,
        "scheduled",
        None,
        0,
    )
    assert job["created_at"] == "2026-06-01T10:00:00+00:00"
    assert job["next_run_at"] == "2026-06-02T09:00:00+00:00"  # a Tuesday; TZ=UTC
    assert job["last_run_at"] is None and job["last_status"] is None
    assert on_disk(job["id"]) == job == jobs.get_job(job["id"])
    assert changes == [1]


def test_create_dict_schedule_dict_action_repeat_catch_up_timeout(home: Path) -> None:
    job = jobs.create_job(
        {"kind": "interval", "seconds": 1800},
        PY_OK,
        name="  half-hourly ",
        repeat=3,
        catch_up="skip",
        timeout=30,
        now=T0,
    )
    assert job["schedule"] == {"kind": "interval", "seconds": 1800, "display": "every 30m"}
    assert job["action"] == PY_OK
    assert job["name"] == "half-hourly"
    assert job["repeat"] == {"times": 3, "completed": 0}
    assert (job["catch_up"], job["timeout"]) == ("skip", 30)
    assert job["next_run_at"] == to_iso(T0 + timedelta(minutes=30))
    assert jobs.create_job("every 1h", "true", repeat={"times": 2}, now=T0)["repeat"] == {
        "times": 2,
        "completed": 0,
    }


def test_create_with_tz_reads_the_wall_clock_of_that_zone(home: Path) -> None:
    job = jobs.create_job("0 9 * * *", "true", tz="Europe/Berlin", now=T0)
    assert job["schedule"]["tz"] == "Europe/Berlin"
    assert job["next_run_at"] == "2026-06-02T07:00:00+00:00"  # 09:00 CEST


def test_create_one_shots(home: Path) -> None:
    soon = jobs.create_job("in 30m", "true", now=T0)
    assert soon["schedule"]["kind"] == "once"
    assert soon["next_run_at"] == to_iso(T0 + timedelta(minutes=30))
    assert soon["repeat"] == {"times": 1, "completed": 0}
    iso = jobs.create_job("2026-06-01T12:00:00+00:00", "true", now=T0)
    assert iso["next_run_at"] == "2026-06-01T12:00:00+00:00"
    naive = jobs.create_job("2026-06-01T13:00", "true", tz="Europe/Berlin", now=T0)
    assert naive["next_run_at"] == "2026-06-01T11:00:00+00:00"


def test_create_naive_one_shot_reads_the_configured_zone(home: Path) -> None:
    write_config(home, "cron:\n  timezone: America/Toronto\n")
    job = jobs.create_job("2026-06-01T12:00", "true", now=T0)
    assert job["next_run_at"] == "2026-06-01T16:00:00+00:00"


@pytest.mark.parametrize("when", ["2026-06-01T09:59:59+00:00", "2026-06-01T10:00:00+00:00"])
def test_create_past_one_shot_is_rejected_and_writes_nothing(
    home: Path, when: str, changes: list[int]
) -> None:
    jobs.create_job("every 1h", "true", now=T0)
    changes.clear()
    exc = raises_unchanged(ScheduleError, lambda: jobs.create_job(when, "true", now=T0))
    assert isinstance(exc, ValueError) and when in str(exc)
    assert changes == []


def test_create_disabled_is_paused(home: Path) -> None:
    job = jobs.create_job("every 1h", "true", enabled=False, now=T0)
    assert (job["state"], job["enabled"], job["next_run_at"]) == ("paused", False, None)
    assert jobs.list_jobs(include_disabled=False) == []
    assert [j["id"] for j in jobs.list_jobs()] == [job["id"]]


def test_get_and_list(home: Path) -> None:
    assert jobs.get_job("abcdefabcdef") is None
    assert jobs.list_jobs() == []
    a = jobs.create_job("every 1h", "true", now=T0)
    b = jobs.create_job("every 2h", "true", now=T0)
    jobs.pause_job(b["id"], now=T0)
    assert [j["id"] for j in jobs.list_jobs()] == [a["id"], b["id"]]
    assert [j["id"] for j in jobs.list_jobs(include_disabled=False)] == [a["id"]]
    got = jobs.get_job(a["id"])
    assert got is not None
    got["name"] = "mutated copy"
    assert jobs.get_job(a["id"])["name"] != "mutated copy"  # type: ignore[index]
    assert jobs.get_due_jobs(T0 + timedelta(hours=1)) == [jobs.get_job(a["id"])]
    assert jobs.get_due_jobs(T0 + timedelta(minutes=59)) == []


# -- update / remove / pause / resume ----------------------------------------------------


def test_update_schedule_recomputes_next_run(home: Path, changes: list[int]) -> None:
    job = jobs.create_job("every 1h", "true", now=T0)
    changed = jobs.update_job(
        job["id"], schedule="*/5 * * * *", name="five", now=T0 + timedelta(minutes=12)
    )
    assert changed["schedule"]["expr"] == "*/5 * * * *"
    assert changed["next_run_at"] == "2026-06-01T10:15:00+00:00"
    assert changed["name"] == "five"
    assert on_disk(job["id"]) == changed
    tz = jobs.update_job(job["id"], tz="Asia/Tokyo", now=T0 + timedelta(minutes=12))
    assert tz["schedule"]["tz"] == "Asia/Tokyo"
    assert tz["next_run_at"] == "2026-06-01T10:15:00+00:00"
    assert changes == [1, 1, 1]


def test_update_other_fields_keep_next_run(home: Path) -> None:
    job = jobs.create_job("every 1h", "true", now=T0)
    changed = jobs.update_job(
        job["id"], action=PY_OK, catch_up="skip", timeout=5, now=T0 + timedelta(minutes=30)
    )
    assert changed["next_run_at"] == job["next_run_at"]
    assert (changed["action"], changed["catch_up"], changed["timeout"]) == (PY_OK, "skip", 5)


@pytest.mark.parametrize(
    "field", ["id", "state", "fire_claim", "next_run_at", "created_at", "last_status", "bogus"]
)
def test_update_uneditable_field_is_rejected(home: Path, field: str, changes: list[int]) -> None:
    job = jobs.create_job("every 1h", "true", now=T0)
    changes.clear()
    exc = raises_unchanged(
        JobValueError, lambda: jobs.update_job(job["id"], now=T0, **{field: "x"})
    )
    assert field in str(exc)
    assert changes == []


def test_unknown_id_raises_job_not_found(home: Path, changes: list[int]) -> None:
    jobs.create_job("every 1h", "true", now=T0)
    changes.clear()
    for call in (
        lambda: jobs.update_job("abcdefabcdef", name="x", now=T0),
        lambda: jobs.pause_job("abcdefabcdef", now=T0),
        lambda: jobs.resume_job("abcdefabcdef", now=T0),
    ):
        exc = raises_unchanged(JobNotFoundError, call)
        assert isinstance(exc, KeyError) and isinstance(exc, CronkitError)
        assert "abcdefabcdef" in str(exc)
    assert unchanged(lambda: jobs.remove_job("abcdefabcdef")) is False
    assert changes == []


def test_remove(home: Path, changes: list[int]) -> None:
    a = jobs.create_job("every 1h", "true", now=T0)
    b = jobs.create_job("every 1h", "true", now=T0)
    changes.clear()
    assert jobs.remove_job(a["id"]) is True
    assert jobs.get_job(a["id"]) is None
    assert [j["id"] for j in jobs.list_jobs()] == [b["id"]]
    assert unchanged(lambda: jobs.remove_job(a["id"])) is False
    assert changes == [1]


def test_pause_and_resume_from_now_without_burst(home: Path, changes: list[int]) -> None:
    job = jobs.create_job("0 * * * *", "true", now=T0)
    changes.clear()
    paused = jobs.pause_job(job["id"], reason="maintenance", now=T0 + M)
    assert (paused["state"], paused["enabled"], paused["next_run_at"]) == ("paused", False, None)
    assert (paused["paused_at"], paused["paused_reason"]) == (to_iso(T0 + M), "maintenance")
    assert unchanged(lambda: jobs.claim_due_jobs(T0 + timedelta(hours=5))) == []
    resumed = jobs.resume_job(job["id"], now=T0 + timedelta(hours=5, minutes=20))
    assert (resumed["state"], resumed["enabled"]) == ("scheduled", True)
    assert (resumed["paused_at"], resumed["paused_reason"]) == (None, None)
    assert resumed["next_run_at"] == "2026-06-01T16:00:00+00:00"
    assert jobs.claim_due_jobs(T0 + timedelta(hours=5, minutes=20)) == []
    assert executions.list_executions(limit=None) == []  # no missed rows, no runs
    assert changes == [1, 1]


def test_resume_of_a_one_shot_whose_time_passed(home: Path) -> None:
    job = jobs.create_job("in 10m", "true", now=T0)
    jobs.pause_job(job["id"], now=T0)
    resumed = jobs.resume_job(job["id"], now=T0 + timedelta(hours=1))
    assert resumed["state"] == "completed" and resumed["next_run_at"] is None
    assert resumed["last_status"] == "missed"


# -- the claim: rule 1 -----------------------------------------------------------------------


def test_claim_missing_job_is_none(home: Path) -> None:
    jobs.create_job("every 1m", "true", now=T0)
    assert unchanged(lambda: jobs.claim_job_for_fire("abcdefabcdef", now=T0 + M)) is None
    assert (
        unchanged(lambda: jobs.claim_job_for_fire("abcdefabcdef", now=T0 + M, force=True)) is None
    )


def test_claim_completed_job_is_none_even_forced(home: Path) -> None:
    job = jobs.create_job("in 1m", "true", now=T0)
    token = jobs.claim_job_for_fire(job["id"], now=T0 + M)
    assert token is not None
    assert jobs.mark_job_run(job["id"], token, success=True, now=T0 + M)
    assert jobs.get_job(job["id"])["state"] == "completed"  # type: ignore[index]
    for force in (False, True):
        assert (
            unchanged(lambda f=force: jobs.claim_job_for_fire(job["id"], now=T0 + 2 * M, force=f))
            is None
        )


# -- rule 2 ----------------------------------------------------------------------------------


def test_paused_job_needs_force_and_stays_paused(home: Path) -> None:
    job = jobs.create_job("every 1m", "true", now=T0)
    jobs.pause_job(job["id"], now=T0)
    assert unchanged(lambda: jobs.claim_job_for_fire(job["id"], now=T0 + 5 * M)) is None
    token = jobs.claim_job_for_fire(job["id"], now=T0 + 5 * M, force=True)
    assert token
    claimed = on_disk(job["id"])
    assert claimed["fire_claim"]["token"] == token
    assert (claimed["state"], claimed["enabled"], claimed["next_run_at"]) == ("paused", False, None)
    assert jobs.mark_job_run(job["id"], token, success=True, now=T0 + 5 * M)
    after = on_disk(job["id"])
    assert (after["state"], after["enabled"], after["next_run_at"]) == ("paused", False, None)
    assert (after["last_status"], after["fire_claim"]) == ("ok", None)
    # Forced once: a tick still does not fire it.
    assert jobs.claim_due_jobs(T0 + timedelta(hours=1)) == []


# -- rule 3 ----------------------------------------------------------------------------------


def test_live_claim_blocks_a_second_claim(home: Path) -> None:
    job = jobs.create_job("every 1m", "true", now=T0)
    first = jobs.claim_job_for_fire(job["id"], now=T0 + M)
    assert first
    # Due again (next slot T0+2m), but the first run still holds a live claim.
    assert unchanged(lambda: jobs.claim_job_for_fire(job["id"], now=T0 + 2 * M)) is None
    assert unchanged(lambda: jobs.claim_job_for_fire(job["id"], now=T0 + 2 * M, force=True)) is None


@pytest.mark.parametrize(("age", "claimable"), [(299, False), (300, True), (301, True)])
def test_claim_ttl_boundary(home: Path, age: int, claimable: bool) -> None:
    """Live while the claim's age is in [0, ttl): at age == ttl it is claimable (ttl 300)."""
    job = jobs.create_job("every 1m", "true", now=T0)
    first = jobs.claim_job_for_fire(job["id"], now=T0 + M)
    assert first
    later = T0 + M + age * S
    if claimable:
        second = jobs.claim_job_for_fire(job["id"], now=later)
        assert second and second != first
        assert on_disk(job["id"])["fire_claim"]["token"] == second
        # The stale owner can no longer record its result.
        assert (
            unchanged(lambda: jobs.mark_job_run(job["id"], first, success=True, now=later)) is False
        )
    else:
        assert unchanged(lambda: jobs.claim_job_for_fire(job["id"], now=later)) is None


def test_claim_ttl_from_config(home: Path) -> None:
    write_config(home, "cron:\n  claim_ttl: 30\n")
    job = jobs.create_job("every 1m", "true", now=T0)
    assert jobs.claim_job_for_fire(job["id"], now=T0 + M)
    assert jobs.claim_job_for_fire(job["id"], now=T0 + M + 29 * S) is None
    assert jobs.claim_job_for_fire(job["id"], now=T0 + M + 30 * S, force=True)


def test_claim_dated_in_the_future_is_stale(home: Path) -> None:
    job = jobs.create_job("every 1m", "true", now=T0)
    edit_job(
        job["id"],
        lambda j: j.update(
            fire_claim={
                "token": "f" * 32,
                "at": to_iso(T0 + timedelta(minutes=10)),
                "by": "elsewhere:1:1",
                "scheduled_at": to_iso(T0),
            }
        ),
    )
    token = jobs.claim_job_for_fire(job["id"], now=T0 + M)
    assert token and token != "f" * 32
    assert on_disk(job["id"])["fire_claim"]["at"] == to_iso(T0 + M)


# -- rule 4 ----------------------------------------------------------------------------------


def test_not_due_is_none(home: Path) -> None:
    job = jobs.create_job("every 1m", "true", now=T0)
    assert unchanged(lambda: jobs.claim_job_for_fire(job["id"], now=T0 + M - S)) is None
    # Forcing a job that is not due runs it without consuming the coming slot.
    token = jobs.claim_job_for_fire(job["id"], now=T0 + 30 * S, force=True)
    assert token
    assert on_disk(job["id"])["next_run_at"] == to_iso(T0 + M)


def test_scheduled_at_before_next_run_is_a_duplicate(home: Path) -> None:
    job = jobs.create_job("every 1m", "true", now=T0)
    token = jobs.claim_job_for_fire(job["id"], scheduled_at=T0 + M, now=T0 + M)
    assert token
    assert jobs.mark_job_run(job["id"], token, success=True, now=T0 + M + S)
    # The same slot again (a replayed external fire), at a time the job is due again.
    assert (
        unchanged(lambda: jobs.claim_job_for_fire(job["id"], scheduled_at=T0 + M, now=T0 + 2 * M))
        is None
    )
    assert (
        unchanged(
            lambda: jobs.claim_job_for_fire(job["id"], scheduled_at=to_iso(T0 + M), now=T0 + 2 * M)
        )
        is None
    )


def test_scheduled_at_after_now_is_none(home: Path) -> None:
    job = jobs.create_job("every 1m", "true", now=T0)
    assert (
        unchanged(
            lambda: jobs.claim_job_for_fire(job["id"], scheduled_at=T0 + 3 * M, now=T0 + 2 * M)
        )
        is None
    )


def test_scheduled_at_past_next_run_claims_that_slot_and_records_missed(home: Path) -> None:
    job = jobs.create_job("every 10m", "true", now=T0)
    slot = T0 + timedelta(minutes=30)
    token = jobs.claim_job_for_fire(job["id"], scheduled_at=slot, now=slot + M, source="webhook")
    assert token
    claimed = on_disk(job["id"])
    assert claimed["fire_claim"]["scheduled_at"] == to_iso(slot)
    assert claimed["last_scheduled_at"] == to_iso(slot)
    assert claimed["next_run_at"] == to_iso(T0 + timedelta(minutes=40))
    assert claimed["repeat"]["completed"] == 1
    missed = rows(job["id"], "missed")
    assert sorted(r["scheduled_at"] for r in missed) == [
        to_iso(T0 + timedelta(minutes=10)),
        to_iso(T0 + timedelta(minutes=20)),
    ]
    (run,) = rows(job["id"], "claimed")
    assert (run["id"], run["scheduled_at"], run["source"]) == (token, to_iso(slot), "webhook")


def test_successful_claim_stamps_everything_in_one_write(home: Path) -> None:
    job = jobs.create_job("every 1m", "true", now=T0)
    token = jobs.claim_job_for_fire(job["id"], now=T0 + M + 5 * S)
    assert isinstance(token, str) and token
    stored = on_disk(job["id"])
    claim = stored["fire_claim"]
    assert (claim["token"], claim["at"], claim["scheduled_at"]) == (
        token,
        to_iso(T0 + M + 5 * S),
        to_iso(T0 + M),
    )
    assert claim["by"].count(":") >= 2
    assert stored["repeat"]["completed"] == 1
    assert stored["next_run_at"] == to_iso(T0 + 2 * M)
    (row,) = rows(job["id"])
    assert (row["id"], row["status"], row["source"]) == (token, "claimed", "manual")


# -- mark_job_run ----------------------------------------------------------------------------


def test_mark_job_run_applies_only_with_the_live_token(home: Path) -> None:
    job = jobs.create_job("every 1m", "true", now=T0)
    token = jobs.claim_job_for_fire(job["id"], now=T0 + M)
    assert token
    assert (
        unchanged(lambda: jobs.mark_job_run(job["id"], "0" * 32, success=True, now=T0 + M)) is False
    )
    assert (
        unchanged(lambda: jobs.mark_job_run("abcdefabcdef", token, success=True, now=T0 + M))
        is False
    )
    assert jobs.mark_job_run(job["id"], token, success=False, error="exit status 3", now=T0 + M + S)
    stored = on_disk(job["id"])
    assert stored["fire_claim"] is None
    assert (stored["last_run_at"], stored["last_status"], stored["last_error"]) == (
        to_iso(T0 + M + S),
        "error",
        "exit status 3",
    )
    assert stored["failure_streak"] == 1
    # The same token twice: the claim is gone.
    assert unchanged(lambda: jobs.mark_job_run(job["id"], token, success=True, now=T0 + M)) is False


def test_failure_streak_and_status_override(home: Path) -> None:
    job = jobs.create_job("every 1m", "true", now=T0)
    statuses = [(False, "timeout"), (False, None), (True, None), (False, "interrupted")]
    seen = []
    for i, (success, status) in enumerate(statuses, start=1):
        now = T0 + i * M
        token = jobs.claim_job_for_fire(job["id"], now=now)
        assert token
        assert jobs.mark_job_run(job["id"], token, success=success, status=status, now=now)
        stored = on_disk(job["id"])
        seen.append((stored["last_status"], stored["failure_streak"]))
    assert seen == [("timeout", 1), ("error", 2), ("ok", 0), ("interrupted", 1)]


def test_repeat_accounting_until_completed(home: Path) -> None:
    job = jobs.create_job("every 1m", "true", repeat=2, now=T0)
    first = jobs.claim_job_for_fire(job["id"], now=T0 + M)
    assert first and on_disk(job["id"])["repeat"] == {"times": 2, "completed": 1}
    assert jobs.mark_job_run(job["id"], first, success=False, now=T0 + M)
    second = jobs.claim_job_for_fire(job["id"], now=T0 + 2 * M)
    assert second
    stored = on_disk(job["id"])
    assert stored["repeat"] == {"times": 2, "completed": 2}
    assert (stored["next_run_at"], stored["state"]) == (None, "scheduled")
    assert jobs.mark_job_run(job["id"], second, success=True, now=T0 + 2 * M)
    stored = on_disk(job["id"])
    assert (stored["state"], stored["next_run_at"], stored["last_status"]) == (
        "completed",
        None,
        "ok",
    )
    assert unchanged(lambda: jobs.claim_job_for_fire(job["id"], now=T0 + 3 * M)) is None
    assert unchanged(lambda: jobs.claim_due_jobs(T0 + timedelta(hours=1))) == []


def test_claim_due_jobs_batch(home: Path) -> None:
    a = jobs.create_job("every 1m", "true", now=T0)
    b = jobs.create_job("every 5m", "true", now=T0)
    won = jobs.claim_due_jobs(T0 + M)
    assert [(j["id"], j["fire_claim"]["token"] == t) for j, t in won] == [(a["id"], True)]
    assert on_disk(a["id"])["fire_claim"]["token"] == won[0][1]
    assert on_disk(b["id"])["fire_claim"] is None
    assert unchanged(lambda: jobs.claim_due_jobs(T0 + M)) == []
    (row,) = rows(a["id"])
    assert (row["status"], row["source"]) == ("claimed", "tick")


_RACE_CHILD = """
import sys, time
from datetime import datetime
from pathlib import Path
from cron import jobs
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.001)
print(jobs.claim_job_for_fire(sys.argv[2], now=datetime.fromisoformat(sys.argv[3])) or "")
"""


def test_processes_racing_for_one_slot_exactly_one_wins(home: Path, tmp_path: Path) -> None:
    job = jobs.create_job("every 1m", "true", now=T0)
    go = tmp_path / "go"  # not in the home: a database store writes no file there
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACE_CHILD, str(go), job["id"], (T0 + M).isoformat()],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    time.sleep(0.3)
    go.touch()
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    winners = [o for o in outputs if o]
    assert len(winners) == 1
    assert on_disk(job["id"])["fire_claim"]["token"] == winners[0]
    assert [r["id"] for r in rows(job["id"])] == winners


# -- bad input never corrupts state --------------------------------------------------------

BAD_SCHEDULES: list[Any] = [
    "",
    "not a schedule",
    "every 0s",
    "61 * * * *",
    "* * * *",
    "0 9 * * 8",
    "in -5m",
    "every 1x",
    {"kind": "nope"},
    {"kind": "interval", "seconds": 0},
    {"kind": "cron", "expr": 5},
    42,
    None,
    ["0 9 * * *"],
]
BAD_ACTIONS: list[Any] = [
    {"kind": "command", "command": 42},
    {"kind": "command", "command": ["ls"]},
    {"kind": "command", "command": ""},
    {"kind": "command"},
    42,
    None,
    ["ls"],
    {"kind": "python", "target": "not a target"},
    {"kind": "no-such-runner"},
    {},
]
# Well formed but not importable here: the gateway may import it (SPEC §14), so the job
# is added with a WARNING (see test_job_where.py), not refused.


@pytest.mark.parametrize("schedule", BAD_SCHEDULES, ids=repr)
def test_invalid_schedule_writes_nothing(home: Path, schedule: Any, changes: list[int]) -> None:
    job = jobs.create_job("every 1h", "true", now=T0)
    changes.clear()
    exc = raises_unchanged(ScheduleError, lambda: jobs.create_job(schedule, "true", now=T0))
    assert isinstance(exc, ValueError)
    assert "accepted forms" in str(exc)
    raises_unchanged(ScheduleError, lambda: jobs.update_job(job["id"], schedule=schedule, now=T0))
    assert changes == []


@pytest.mark.parametrize("action", BAD_ACTIONS, ids=repr)
def test_invalid_action_writes_nothing(home: Path, action: Any, changes: list[int]) -> None:
    job = jobs.create_job("every 1h", "true", now=T0)
    changes.clear()
    exc = raises_unchanged(ActionError, lambda: jobs.create_job("every 1h", action, now=T0))
    assert isinstance(exc, ValueError)
    raises_unchanged(ActionError, lambda: jobs.update_job(job["id"], action=action, now=T0))
    assert changes == []


@pytest.mark.parametrize(
    ("kwargs", "exc_type"),
    [
        ({"tz": "Mars/Olympus"}, ScheduleError),
        ({"tz": 5}, ScheduleError),
        ({"repeat": 0}, JobValueError),
        ({"repeat": -1}, JobValueError),
        ({"repeat": "3"}, JobValueError),
        ({"repeat": True}, JobValueError),
        ({"catch_up": "sometimes"}, JobValueError),
        ({"timeout": -1}, JobValueError),
        ({"timeout": "10"}, JobValueError),
        ({"name": ""}, JobValueError),
        ({"name": 7}, JobValueError),
        ({"enabled": "yes"}, JobValueError),
    ],
    ids=repr,
)
def test_invalid_fields_write_nothing(
    home: Path, kwargs: dict[str, Any], exc_type: type[Exception], changes: list[int]
) -> None:
    job = jobs.create_job("every 1h", "true", now=T0)
    changes.clear()
    exc = raises_unchanged(exc_type, lambda: jobs.create_job("every 1h", "true", now=T0, **kwargs))
    assert isinstance(exc, ValueError)
    raises_unchanged(exc_type, lambda: jobs.update_job(job["id"], now=T0, **kwargs))
    assert changes == []


def test_bad_input_on_an_empty_home_creates_no_store(home: Path) -> None:
    raises_unchanged(ScheduleError, lambda: jobs.create_job("nonsense", "true", now=T0))
    raises_unchanged(
        ActionError, lambda: jobs.create_job("every 1h", {"kind": "command", "command": 1}, now=T0)
    )
    assert not store_exists()


def test_a_stored_schedule_that_never_fires_again_stops_its_job_not_the_tick(home: Path) -> None:
    from cron import scheduler

    bad = jobs.create_job("every 1m", "true", now=T0)
    good = jobs.create_job("every 1m", "true", now=T0)
    # As if written by an older build (either-day rule); under Vixie's star rule Feb 30 never comes.
    edit_job(
        bad["id"],
        lambda j: j.update(
            schedule={"kind": "cron", "expr": "0 0 30 2 */1", "display": "0 0 30 2 */1"}
        ),
    )
    assert scheduler.tick(now=T0 + M) == 2
    assert jobs.get_job(bad["id"])["state"] == "error"
    assert jobs.get_job(bad["id"])["next_run_at"] is None
    assert jobs.get_job(good["id"])["state"] == "scheduled"
    assert scheduler.tick(now=T0 + 2 * M) == 1  # the good job keeps firing
