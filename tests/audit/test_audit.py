"""The completeness audit (SPEC §13): scenarios driven with ``tick(now=…)``, then ``verify``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cron import audit, executions, job_events, jobs, scheduler
from cron.errors import AuditWindowError, JobNotFoundError
from tests.cli._helpers import cli
from tests.conftest import write_config

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


@pytest.fixture(autouse=True)
def _home(home: Path) -> Iterator[Path]:
    yield home


def ticks(start: datetime, n: int, step: timedelta = MIN) -> datetime:
    t = start
    for _ in range(n):
        t += step
        scheduler.tick(now=t)
    return t


def ledger_sql(sql: str, params: tuple[object, ...] = ()) -> None:
    executions.write_ledger(lambda conn: conn.execute(sql, params))


def test_on_time_fires_are_each_accounted_once() -> None:
    job = jobs.create_job("every 1m", "true", now=T0)
    end = ticks(T0, 10)
    report = audit.verify(since=T0, until=end, now=end)
    [j] = report.jobs
    assert (j.job_id, j.owed, j.outcomes, j.passed_over) == (job["id"], 10, {"ok": 10}, {})
    assert report.ok and report.exit_code == 0 and report.lost == [] and report.double == []


def test_catch_up_once_late_fire_covers_the_slots_it_replaced() -> None:
    jobs.create_job("every 1m", "true", now=T0)
    t = ticks(T0, 3)
    t = ticks(t, 1, timedelta(hours=1))  # stalled for an hour: one late fire, no burst
    end = ticks(t, 2)
    [j] = audit.verify(since=T0, until=end, now=end).jobs
    # 3 on time + the late fire for 12:04 + 59 slots it passed over + 2 on time.
    assert j.owed == 3 + 60 + 2
    assert j.outcomes == {"ok": 6}
    assert j.passed_over == {"late_fire": 59}
    assert j.lost == [] and j.double == []


def test_catch_up_skip_missed_row_covers_the_stall() -> None:
    jobs.create_job("every 1m", "true", catch_up="skip", now=T0)
    t = ticks(T0, 2)
    end = ticks(t, 1, timedelta(hours=1))
    [j] = audit.verify(since=T0, until=end, now=end).jobs
    assert j.outcomes == {"missed": 1, "ok": 2}
    assert j.passed_over == {"missed": 59}
    assert j.owed == 62 and not j.lost and not j.double


def test_overlap_leaves_skipped_rows_and_a_crash_counts_as_running() -> None:
    job = jobs.create_job("every 1m", "true", now=T0)
    # A run claimed and never marked (its process died): the claim stays live 300 s.
    assert jobs.claim_job_for_fire(job["id"], now=T0 + MIN) is not None
    end = ticks(T0 + MIN, 3)
    [j] = audit.verify(since=T0, until=end, now=end).jobs
    assert j.outcomes == {"running": 1, "skipped": 3}
    assert audit.verify(since=T0, until=end, now=end).ok


def test_one_shot_missed_and_on_time() -> None:
    late = jobs.create_job((T0 + 2 * MIN).isoformat(), "true", now=T0)
    ok = jobs.create_job((T0 + 3 * MIN).isoformat(), "true", now=T0)
    scheduler.tick(now=T0 + 3 * MIN)  # first one is 60 s late: fires; second on time
    late2 = jobs.create_job((T0 + 4 * MIN).isoformat(), "true", now=T0)
    end = T0 + 10 * MIN
    scheduler.tick(now=end)  # 6 min late: missed
    report = audit.verify(since=T0, until=end, now=end)
    by = {j.job_id: j for j in report.jobs}
    assert by[late["id"]].outcomes == {"ok": 1}
    assert by[ok["id"]].outcomes == {"ok": 1}
    assert by[late2["id"]].outcomes == {"missed": 1}
    assert report.ok


def test_paused_slots_and_slots_after_removal_are_not_owed() -> None:
    job = jobs.create_job("every 1m", "true", now=T0)
    t = ticks(T0, 5)
    jobs.pause_job(job["id"], now=t + timedelta(seconds=30))
    t = ticks(t, 10)  # paused: nothing fires, nothing owed
    jobs.resume_job(job["id"], now=t)
    t = ticks(t, 5)
    jobs.remove_job(job["id"], now=t + timedelta(seconds=30))
    end = ticks(t, 5)
    report = audit.verify(since=T0, until=end, now=end)
    [j] = report.jobs
    assert (j.owed, j.outcomes) == (10, {"ok": 10})
    assert report.ok
    # A removed job is still auditable by id from its events.
    assert audit.verify(job_id=job["id"], since=T0, until=end, now=end).jobs[0].owed == 10


def test_edit_during_a_stall_supersedes_the_undecided_slots() -> None:
    job = jobs.create_job("every 1m", "true", now=T0)
    t = ticks(T0, 2)
    t += timedelta(minutes=30)  # no tick: the ticker is down
    jobs.update_job(job["id"], schedule="every 5m", now=t)
    end = ticks(t, 3, timedelta(minutes=5))
    [j] = audit.verify(since=T0, until=end, now=end).jobs
    assert j.superseded == 30  # 12:03 .. 12:32 were never decided; the edit replaced them
    assert (j.owed, j.outcomes) == (2 + 3, {"ok": 5})
    assert not j.lost


def test_dst_spring_forward_and_fall_back_slots_are_the_tickers() -> None:
    write_config_zone = "Europe/Berlin"
    start = datetime(2025, 3, 29, 23, 0, tzinfo=UTC)  # 00:00 CET, the night of the gap
    daily = jobs.create_job("30 2 * * *", "true", tz=write_config_zone, now=start)
    hourly = jobs.create_job("30 * * * *", "true", tz=write_config_zone, now=start)
    end = ticks(start, 6 * 4, timedelta(minutes=15))
    report = audit.verify(since=start, until=end, now=end)
    by = {j.job_id: j for j in report.jobs}
    # 02:30 does not exist: fires once at the first instant after the gap (03:00 CEST).
    assert by[daily["id"]].owed == 1 and by[daily["id"]].outcomes == {"ok": 1}
    assert by[hourly["id"]].outcomes.get("ok") == by[hourly["id"]].owed
    assert report.ok
    start = datetime(2025, 10, 25, 22, 0, tzinfo=UTC)  # 00:00 CEST, the night of the fold
    fixed = jobs.create_job("30 2 * * *", "true", tz=write_config_zone, now=start)
    every = jobs.create_job("30 * * * *", "true", tz=write_config_zone, now=start)
    end = ticks(start, 6 * 4, timedelta(minutes=15))
    by = {j.job_id: j for j in audit.verify(since=start, until=end, now=end).jobs}
    # 02:30 happens twice: the fixed-hour job owes the first pass only, the hourly one
    # owes both: 6 real hours hold 00:30 01:30 02:30 CEST 02:30 CET 03:30 04:30.
    assert (by[fixed["id"]].owed, by[fixed["id"]].outcomes) == (1, {"ok": 1})
    assert (by[every["id"]].owed, by[every["id"]].outcomes) == (6, {"ok": 6})


def test_a_dropped_row_is_lost_and_a_duplicated_row_is_double() -> None:
    job = jobs.create_job("every 1m", "true", now=T0)
    end = ticks(T0, 6)
    slot = (T0 + 3 * MIN).isoformat()
    ledger_sql("DELETE FROM executions WHERE job_id = ? AND scheduled_at = ?", (job["id"], slot))
    other = (T0 + 5 * MIN).isoformat()
    ledger_sql(
        "INSERT INTO executions (id, job_id, scheduled_at, claimed_at, status) "
        "SELECT id || 'x', job_id, scheduled_at, claimed_at, status FROM executions "
        "WHERE job_id = ? AND scheduled_at = ?",
        (job["id"], other),
    )
    report = audit.verify(since=T0, until=end, now=end)
    assert [(p.slot, p.reason) for p in report.lost] == [(slot, "no outcome")]
    assert [(p.slot, p.statuses) for p in report.double] == [(other, ("ok", "ok"))]
    assert report.exit_code == 1


def test_a_slot_not_yet_fired_is_pending_within_grace_then_overdue() -> None:
    jobs.create_job("every 1m", "true", now=T0)
    t = ticks(T0, 2)
    # 12:03 is due and unfired: pending at 12:04:30, overdue (lost) once past grace (120 s).
    near = audit.verify(since=T0, until=t + timedelta(seconds=90), now=t + timedelta(seconds=90))
    assert near.ok and near.jobs[0].pending == 1
    far = audit.verify(since=T0, until=t + timedelta(minutes=10), now=t + timedelta(minutes=10))
    # 12:03 .. 12:12 came due; 12:11 and 12:12 are still within grace of 12:12.
    assert [p.slot[11:16] for p in far.lost] == [f"12:{m:02d}" for m in range(3, 11)]
    assert {p.reason for p in far.lost} == {"overdue"} and far.jobs[0].pending == 2


def test_bad_input() -> None:
    with pytest.raises(AuditWindowError):
        audit.verify(since=T0, until=T0 - MIN)
    with pytest.raises(JobNotFoundError):
        audit.verify(job_id="feedfacecafe")


def test_events_are_recorded_with_the_schedule_in_force(home: Path) -> None:
    job = jobs.create_job("every 1m", "true", now=T0)
    jobs.update_job(job["id"], schedule="every 2m", now=T0 + MIN)
    jobs.update_job(job["id"], name="renamed", now=T0 + 2 * MIN)
    jobs.pause_job(job["id"], now=T0 + 3 * MIN)
    jobs.pause_job(job["id"], now=T0 + 4 * MIN)  # no change: no event
    jobs.resume_job(job["id"], now=T0 + 5 * MIN)
    jobs.remove_job(job["id"], now=T0 + 6 * MIN)
    from cron.store import get_store

    with get_store().ledger().read() as conn:
        assert conn is not None
        rows = conn.execute("SELECT kind, at, schedule, detail FROM job_events ORDER BY id")
        got = [
            (k, at, json.loads(s)["seconds"], json.loads(d)["next_run_at"]) for k, at, s, d in rows
        ]
    assert got == [
        ("create", "2025-03-01T12:00:00+00:00", 60, "2025-03-01T12:01:00+00:00"),
        ("edit", "2025-03-01T12:01:00+00:00", 120, "2025-03-01T12:03:00+00:00"),
        ("edit", "2025-03-01T12:02:00+00:00", 120, "2025-03-01T12:03:00+00:00"),
        ("pause", "2025-03-01T12:03:00+00:00", 120, None),
        ("resume", "2025-03-01T12:05:00+00:00", 120, "2025-03-01T12:07:00+00:00"),
        ("remove", "2025-03-01T12:06:00+00:00", 120, None),
    ]


def test_a_failed_event_write_never_undoes_the_mutation(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(fn: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(job_events, "write_ledger", broken)
    job = jobs.create_job("every 1m", "true", now=T0)
    assert jobs.get_job(job["id"]) is not None
    assert "could not record the create event" in caplog.text


def test_cli_verify_exit_codes_and_json(home: Path) -> None:
    write_config(home, "cron:\n  timezone: UTC\n")
    job = jobs.create_job("every 1m", "true", now=T0)
    end = ticks(T0, 4)
    window = ("--since", T0.isoformat(), "--until", end.isoformat())
    r = cli("verify", *window)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("✓ every slot accounted for exactly once: 4 slots")
    r = cli("verify", job["id"], *window, "--json")
    data = json.loads(r.stdout)
    assert data["ok"] is True and data["totals"]["owed"] == 4
    assert set(data) == {"since", "until", "ok", "totals", "lost", "double", "jobs"}
    assert data["jobs"][0]["outcomes"] == {"ok": 4}
    ledger_sql("DELETE FROM executions WHERE scheduled_at = ?", ((T0 + 2 * MIN).isoformat(),))
    r = cli("verify", *window)
    assert r.exit_code == 1
    assert f"lost: job {job['id']} (true) slot 2025-03-01T12:02:00+00:00: no outcome" in r.stdout
    for bad in (
        ("--since", "yesterday"),
        ("--since", end.isoformat(), "--until", T0.isoformat()),
        ("feedfacecafe",),
    ):
        r = cli("verify", *bad)
        assert r.exit_code == 2 and len(r.stderr.splitlines()) == 1 and r.stdout == ""
