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

from cron import executions, jobs
from cron.runtime import Runtime
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
