"""The ticker reads the jobs due at its next wake-up just before it (``Runtime.prefetch_due``).

The read is an optimisation only: the claim is still the store's compare-and-set,
so a row that changed after the read loses its swap and is read again, and a job
that was not in the read is left to the next tick. These tests pin both halves:
the tick at the prefetched time sweeps the rows read before (a job added after
the read waits for the next tick), and nothing read early is ever fired on stale
terms.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cron import executions, job_claims, jobs
from cron.runtime import Runtime
from cron.store import get_store
from cron.ticker import PREFETCH_LEAD, InProcessCronScheduler

T0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
DUE = T0 + timedelta(minutes=1)
OK = {"kind": "python", "target": "tests.characterization.actions:ok"}


def _statuses(job_id: str) -> list[str]:
    return [row["status"] for row in executions.list_executions(job_id)]


def test_the_tick_at_the_prefetched_time_sweeps_the_rows_read_before(home: Path) -> None:
    first = jobs.create_job("every 1m", OK, now=T0)
    rt = Runtime()
    try:
        assert rt.prefetch_due(DUE) == 1
        later = jobs.create_job("every 1m", OK, now=T0)  # due at DUE too, added after the read
        assert rt.tick(now=DUE, sync=True) == 1
        assert _statuses(first["id"]) == ["ok"] and _statuses(later["id"]) == []
        # Used once: the next tick reads afresh and finds the other job.
        assert rt.tick(now=DUE, sync=True) == 1
        assert _statuses(later["id"]) == ["ok"]
    finally:
        rt.close()


def test_a_row_changed_after_the_read_is_read_again(home: Path) -> None:
    paused = jobs.create_job("every 1m", OK, now=T0)
    renamed = jobs.create_job("every 1m", OK, name="before", now=T0)
    rt = Runtime()
    try:
        assert rt.prefetch_due(DUE) == 2
        jobs.pause_job(paused["id"], now=T0)
        jobs.update_job(renamed["id"], name="after", now=T0)
        assert rt.tick(now=DUE, sync=True) == 1
        assert _statuses(paused["id"]) == []
        (row,) = executions.list_executions(renamed["id"])
        assert row["status"] == "ok"
        doc = jobs.get_job(renamed["id"])
        assert doc is not None and doc["name"] == "after"
        assert doc["last_scheduled_at"] is not None
    finally:
        rt.close()


def test_a_tick_before_the_prefetched_time_reads_afresh(home: Path) -> None:
    rt = Runtime()
    try:
        assert rt.prefetch_due(DUE + timedelta(seconds=30)) == 0
        job = jobs.create_job("every 1m", OK, now=T0)
        assert rt.tick(now=DUE, sync=True) == 1  # woken early (a change): not the old read
        assert _statuses(job["id"]) == ["ok"]
    finally:
        rt.close()


def test_a_read_older_than_the_max_age_is_not_used(home: Path) -> None:
    rt = Runtime()
    rt.prefetch_max_age = 0.0
    try:
        assert rt.prefetch_due(DUE) == 0
        job = jobs.create_job("every 1m", OK, now=T0)
        assert rt.tick(now=DUE, sync=True) == 1
        assert _statuses(job["id"]) == ["ok"]
    finally:
        rt.close()


def test_the_ticker_reads_ahead_of_a_due_wake(home: Path) -> None:
    first = jobs.create_job("every 1m", OK, now=T0)
    rt = Runtime()
    ticker = InProcessCronScheduler(runtime=rt)
    try:
        ticker._sleep_to(threading.Event(), PREFETCH_LEAD + 0.03, DUE, None)
        later = jobs.create_job("every 1m", OK, now=T0)
        assert rt.tick(now=DUE, sync=True) == 1
        assert _statuses(first["id"]) == ["ok"] and _statuses(later["id"]) == []
    finally:
        rt.close()


def test_a_ticker_woken_early_skips_the_read(home: Path) -> None:
    jobs.create_job("every 1m", OK, now=T0)
    rt = Runtime()
    ticker = InProcessCronScheduler(runtime=rt)
    try:
        ticker.on_jobs_changed()  # a change before the sleep: it ends at once
        ticker._sleep_to(threading.Event(), 5.0, DUE, None)
        jobs.create_job("every 1m", OK, now=T0)
        assert rt.tick(now=DUE, sync=True) == 2  # read afresh: both
    finally:
        rt.close()


@pytest.mark.parametrize("renamed", [1, job_claims.RESCAN_LOST])
def test_swaps_lost_to_other_writers_are_swept_again_on_their_current_rows(
    home: Path, renamed: int
) -> None:
    """Rows read before other writers changed them: every swap of those loses, and
    the jobs are read again (one by one, or with one due scan past RESCAN_LOST) and
    swept on what they are now — renamed ones fire under the new name, ones another
    caller claimed meanwhile or paused do not fire here, untouched ones fire."""
    ids = [jobs.create_job("every 1m", OK, now=T0)["id"] for _ in range(renamed + 8)]
    rows = get_store().scan(due_by=DUE)
    assert len(rows) == len(ids)
    for job_id in ids[:renamed]:
        jobs.update_job(job_id, name="after", now=T0)
    taken = ids[renamed : renamed + 4]
    for job_id in taken:
        assert jobs.claim_job_for_fire(job_id, now=DUE) is not None
    paused = ids[renamed + 4 : renamed + 6]
    for job_id in paused:
        jobs.pause_job(job_id, now=T0)
    lost = renamed + 6  # renamed, taken, paused: every swap of these loses
    assert (lost > job_claims.RESCAN_LOST) == (renamed == job_claims.RESCAN_LOST)  # both paths
    won = job_claims.claim_due_jobs(DUE, prefetched=(DUE, rows))
    got = {job["id"]: job for job, _token in won}
    assert set(got) == set(ids[:renamed]) | set(ids[renamed + 6 :])
    assert all(got[job_id]["name"] == "after" for job_id in ids[:renamed])
    # Nothing was claimed twice: the taken jobs keep the other caller's claim.
    assert not set(got) & set(taken)
    assert all(jobs.get_job(j)["fire_claim"] is None for j in paused)  # type: ignore[index]
