"""Phase 3: the built-in ticker survives anything and tells the truth in its files.

The loop is driven through its seams — ``tick_fn`` and ``wait_fn`` — so a test
runs exactly N iterations with no real sleeping (rq's sentinel idiom).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time

from cron import executions, jobs, paths
from cron.scheduler_provider import InProcessCronScheduler, start_in_background
from cron.status import ticker_status


class CustomStop(BaseException):
    """A BaseException no library would expect."""


def run_loop(outcomes: list[Callable[[], None] | None], clock_step: float = 1.0):
    """Run the real start() loop through ``outcomes``; one tick per entry.

    An entry is None for a clean tick or a callable that raises. Returns the
    scheduler, the tick calls and a per-iteration snapshot of the ticker files.
    """
    stop = threading.Event()
    calls: list[dict] = []
    snapshots: list[tuple[float | None, float | None, str | None]] = []
    with freeze_time("2026-03-01 12:00:00", tick=False) as frozen:

        def tick_fn(**kwargs):
            calls.append(kwargs)
            outcome = outcomes[len(calls) - 1]
            if outcome is not None:
                outcome()
            return 0

        def wait_fn(stop_event: threading.Event, delay: float) -> None:
            snapshots.append(jobs.read_ticker_heartbeat())
            if len(snapshots) == len(outcomes):
                stop_event.set()
            frozen.tick(timedelta(seconds=clock_step))

        sched = InProcessCronScheduler(tick_fn=tick_fn, wait_fn=wait_fn)
        sched.start(stop, interval=30)
    return sched, calls, snapshots


def raiser(exc: BaseException) -> Callable[[], None]:
    def go() -> None:
        raise exc

    return go


T0 = datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp()


def test_loop_runs_exactly_n_iterations_with_sync_false(home: Path) -> None:
    sched, calls, snaps = run_loop([None] * 5)
    assert sched.iterations == 5 and len(calls) == 5
    assert all(c["sync"] is False for c in calls)
    # Heartbeat and success advance on every clean iteration.
    assert [s[0] for s in snaps] == [T0 + i for i in range(5)]
    assert [s[1] for s in snaps] == [T0 + i for i in range(5)]


@pytest.mark.parametrize(
    "exc",
    [RuntimeError("plain"), SystemExit(2), KeyboardInterrupt(), CustomStop("odd")],
    ids=["Exception", "SystemExit", "KeyboardInterrupt", "custom BaseException"],
)
def test_tick_failures_do_not_end_the_loop(
    home: Path, exc: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    sched, calls, snaps = run_loop([None, raiser(exc), raiser(exc), None, raiser(exc)])
    assert sched.iterations == 5
    beats = [s[0] for s in snaps]
    successes = [s[1] for s in snaps]
    errors = [s[2] for s in snaps]
    assert beats == [T0 + i for i in range(5)]  # every iteration
    assert successes == [T0, T0, T0, T0 + 3, T0 + 3]  # clean ticks only
    name = type(exc).__name__
    assert errors[0] is None and errors[3] is None  # cleared by a clean tick
    assert errors[1] is not None and errors[1].startswith(f"{name}:")
    assert errors[4] is not None and errors[4].startswith(f"{name}:")
    failures = [
        r for r in caplog.records if r.levelno == logging.ERROR and "tick failed" in r.getMessage()
    ]
    assert len(failures) == 3
    assert all(r.exc_info and r.exc_info[0] is type(exc) for r in failures)


def test_heartbeat_written_before_first_sleep(home: Path) -> None:
    stop = threading.Event()
    seen: list[float | None] = []

    def tick_fn(**kw):
        seen.append(jobs.read_ticker_heartbeat()[0])
        return 0

    def wait_fn(ev, delay):
        ev.set()

    InProcessCronScheduler(tick_fn=tick_fn, wait_fn=wait_fn).start(stop)
    assert seen[0] is not None  # the start-up beat precedes the first tick


def test_heartbeat_write_oserror_never_propagates(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paths.cron_dir(create=True)
    paths.heartbeat_path().mkdir()  # a directory where the file goes: every write fails
    caplog.set_level(logging.WARNING)
    sched, _, snaps = run_loop([None, raiser(RuntimeError("x")), None])
    assert sched.iterations == 3
    assert any("heartbeat" in r.getMessage() for r in caplog.records)
    # The success marker is a different file and still advances.
    assert snaps[-1][1] == T0 + 2


def test_ticker_pid_written_during_run_and_removed_after(home: Path) -> None:
    during: list[dict] = []

    def wait_fn(ev, delay):
        during.append(json.loads(paths.ticker_pid_path().read_text()))
        ev.set()

    InProcessCronScheduler(tick_fn=lambda **kw: 0, wait_fn=wait_fn).start(threading.Event())
    assert during[0]["pid"] == os.getpid() and during[0]["provider"] == "builtin"
    assert not paths.ticker_pid_path().exists()


def test_start_recovers_interrupted_executions(home: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    # A pid that has exited: its owner is provably gone.
    owner = f"{socket.gethostname()}:{int(dead.stdout)}:12345"
    executions.record_claim(
        "t" * 32,
        "abcdefabcdef",
        scheduled_at="2026-01-01T00:00:00+00:00",
        source="tick",
        owner=owner,
    )
    InProcessCronScheduler(tick_fn=lambda **kw: 0, wait_fn=lambda ev, d: ev.set()).start(
        threading.Event()
    )
    row = executions.get_execution("t" * 32)
    assert row is not None and row["status"] == "unknown"


def test_next_delay_is_earliest_due_capped_by_interval(home: Path) -> None:
    now = time.time()
    sched = InProcessCronScheduler(clock=lambda: now)
    assert sched.next_delay(60) == 60  # no jobs
    jobs.create_job("every 10s", "true", now=datetime.fromtimestamp(now, UTC))
    assert sched.next_delay(60) == pytest.approx(10, abs=0.01)
    assert sched.next_delay(5) == 5
    jobs.create_job("every 10s", "true", now=datetime.fromtimestamp(now - 30, UTC))
    assert sched.next_delay(60) == 0  # overdue: no sleep at all


def _real_loop(
    home: Path, counter: list[int]
) -> tuple[InProcessCronScheduler, threading.Event, threading.Thread]:
    def tick_fn(**kw):
        counter.append(1)
        return 0

    sched = InProcessCronScheduler(tick_fn=tick_fn)
    stop = threading.Event()
    t = threading.Thread(target=sched.start, args=(stop,), kwargs={"interval": 60}, daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while not counter and time.monotonic() < deadline:
        time.sleep(0.01)
    return sched, stop, t


def _wait_for(cond: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
    return time.monotonic() - start


def test_stop_is_prompt_when_idle(home: Path) -> None:
    counter: list[int] = []
    _, stop, t = _real_loop(home, counter)
    started = time.monotonic()
    stop.set()
    t.join(2)
    assert not t.is_alive()
    assert time.monotonic() - started < 1.0


def test_wakes_when_jobs_change_in_this_process(home: Path) -> None:
    counter: list[int] = []
    sched, stop, t = _real_loop(home, counter)
    try:
        jobs.add_change_listener(sched.on_jobs_changed)
        before = len(counter)
        jobs.create_job("every 1h", "true")
        assert _wait_for(lambda: len(counter) > before, 1.0) < 1.0
    finally:
        jobs.remove_change_listener(sched.on_jobs_changed)
        stop.set()
        t.join(2)


def test_notices_another_process_changing_the_store_within_1s(home: Path) -> None:
    counter: list[int] = []
    _, stop, t = _real_loop(home, counter)
    try:
        before = len(counter)
        subprocess.run(
            [sys.executable, "-c", "from cron import jobs; jobs.create_job('every 1h', 'true')"],
            check=True,
            env={**os.environ},
        )
        assert _wait_for(lambda: len(counter) > before, 1.0) < 1.0
    finally:
        stop.set()
        t.join(2)


def test_a_real_job_fires_through_start_in_background(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    job = jobs.create_job("every 1s", f"echo tick >> {out}")
    handle = start_in_background(interval=60)
    try:
        assert handle.provider.name == "builtin"
        _wait_for(lambda: out.exists() and out.read_text().count("tick") >= 2, 5.0)
        assert ticker_status().state == "running"
    finally:
        assert handle.stop(timeout=2, wait_for_jobs=5)
    rows = [r for r in executions.list_executions(job["id"]) if r["status"] == "ok"]
    assert len(rows) >= 2
    # Each slot fired at most once.
    assert len({r["scheduled_at"] for r in rows}) == len(rows)
    assert ticker_status().state == "stopped"
