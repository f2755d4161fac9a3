"""SPEC §12: one active ticker per home; a second one stands by and takes over.

Two real tickers (threads of this process, each with its own open of the lock
file) on one home: the second never ticks and never writes a ticker file
while the first lives, and takes over within 2 s of the first one stopping.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from cron import paths
from cron.scheduler_provider import InProcessCronScheduler, start_in_background


class Counting:
    """A ticker whose ticks are counted (no jobs needed) and whose loop sleeps briefly."""

    def __init__(self) -> None:
        self.ticks = 0
        self.stop = threading.Event()
        self.sched = InProcessCronScheduler(
            tick_fn=self._tick, wait_fn=self._wait, standby_poll=0.1
        )
        self.thread = threading.Thread(target=self.sched.start, args=(self.stop,), daemon=True)

    def _tick(self, **_: object) -> int:
        self.ticks += 1
        return 0

    def _wait(self, stop: threading.Event, delay: float) -> None:
        stop.wait(0.05)

    def start(self) -> Counting:
        self.thread.start()
        return self

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()


def _wait(predicate, timeout: float = 5.0) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "condition not met"
        time.sleep(0.01)
    return time.monotonic() - started


def test_a_second_ticker_stands_by_without_ticking_or_writing(home: Path) -> None:
    first = Counting().start()
    _wait(lambda: first.ticks >= 2)
    second = Counting().start()
    _wait(lambda: second.sched.standing_by)
    first_ticks = first.ticks
    time.sleep(0.5)
    assert second.ticks == 0 and not second.sched.active
    assert first.ticks > first_ticks  # the active one keeps ticking meanwhile
    second.halt()
    assert second.ticks == 0
    ticks = first.ticks
    _wait(lambda: first.ticks > ticks)  # the standby's stop did not stop the active one
    first.halt()


def test_standby_stop_never_touches_the_live_tickers_files(home: Path) -> None:
    first = Counting().start()
    _wait(lambda: paths.ticker_pid_path().exists() and first.ticks >= 1)
    handle = start_in_background(interval=0.2)
    _wait(lambda: handle.standing_by)
    pid_before = paths.ticker_pid_path().read_bytes()
    assert handle.stop(timeout=5)
    assert not handle.running
    # Still the active ticker's pid file, and it still ticks.
    assert paths.ticker_pid_path().read_bytes() == pid_before
    ticks = first.ticks
    _wait(lambda: first.ticks > ticks)
    first.halt()


def test_the_standby_takes_over_within_two_seconds(home: Path) -> None:
    first = Counting().start()
    _wait(lambda: first.ticks >= 1)
    second = Counting().start()
    _wait(lambda: second.sched.standing_by)
    first.halt()
    took = _wait(lambda: second.ticks >= 1, timeout=2.0)
    assert took < 2.0
    assert second.sched.active and not second.sched.standing_by
    assert paths.ticker_pid_path().exists()
    second.halt()
    assert not paths.ticker_pid_path().exists()
