"""The ticker's heartbeat is written off its thread (``cron.heartbeat.BeatWriter``).

A heartbeat write is a create, a write and a rename; on a slow disk one took
hundreds of milliseconds, and written on the ticker's thread it made every job
due meanwhile fire that late. The loop now posts each iteration and a writer
thread persists the newest post. These tests pin what keeps ``status`` honest:
only posted beats are written, each with the ticker's own time (a late write
never looks fresher), posts made while a write is slow collapse to the newest,
and a write that fails does not stop the writer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from cron import heartbeat
from cron.heartbeat import Beat, BeatWriter
from cron.ticker import InProcessCronScheduler


def _spawn(fn: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=fn, name=name, daemon=True)
    thread.start()
    return thread


def test_posts_made_during_a_slow_write_collapse_to_the_newest() -> None:
    release = threading.Event()
    writing = threading.Event()
    written: list[Beat] = []

    def write(beat: Beat) -> None:
        writing.set()
        release.wait(5)
        written.append(beat)

    writer = BeatWriter(write, _spawn)
    writer.post(Beat(1.0, True))
    assert writing.wait(5)  # the first write is under way (and stuck)
    writer.post(Beat(2.0, True))
    writer.post(Beat(3.0, False, "RuntimeError: x"))
    assert not writer.flush(0.05)  # a slow disk: not written yet, and post() did not wait
    release.set()
    assert writer.flush(5)
    assert written == [Beat(1.0, True), Beat(3.0, False, "RuntimeError: x")]
    assert writer.close(5)


def test_nothing_is_written_without_a_post() -> None:
    written: list[Beat] = []
    writer = BeatWriter(written.append, _spawn)
    assert writer.flush(1)
    writer.post(Beat(5.0, True))
    assert writer.flush(5)
    assert writer.flush(0.05)  # nothing new posted: nothing more to write
    assert written == [Beat(5.0, True)]
    assert writer.close(5)


def test_a_failing_write_does_not_stop_the_writer() -> None:
    written: list[Beat] = []

    def write(beat: Beat) -> None:
        if beat.at == 1.0:
            raise OSError("disk full")
        written.append(beat)

    writer = BeatWriter(write, _spawn)
    writer.post(Beat(1.0, True))
    assert writer.flush(5)
    writer.post(Beat(2.0, True))
    assert writer.flush(5)
    assert written == [Beat(2.0, True)]
    assert writer.close(5)


def test_close_writes_what_is_pending_and_ends_the_thread() -> None:
    written: list[Beat] = []
    threads: list[threading.Thread] = []

    def spawn(fn: Callable[[], None], name: str) -> threading.Thread:
        threads.append(_spawn(fn, name))
        return threads[-1]

    writer = BeatWriter(written.append, spawn)
    writer.post(Beat(7.0, True))
    assert writer.close(5)
    threads[0].join(5)
    assert not threads[0].is_alive()
    assert written == [Beat(7.0, True)]


def test_a_beat_is_written_with_the_iterations_time_not_the_writes(home: Path) -> None:
    ticker = InProcessCronScheduler()
    ticker._write_beat(Beat(1_700_000_000.5, True))
    beat, success, _error = heartbeat.read_ticker_heartbeat()
    assert beat == success == 1_700_000_000.5
    ticker._write_beat(Beat(1_700_000_060.0, False, "ValueError: v"))
    beat, success, _error = heartbeat.read_ticker_heartbeat()
    assert (beat, success) == (1_700_000_060.0, 1_700_000_000.5)  # a failed beat: no success
