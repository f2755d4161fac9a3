"""The python runner's reusable call threads (cron.call_threads)."""

from __future__ import annotations

import threading
import time

import pytest

from cron.call_threads import CallThreads, start_own_thread


def _on(threads: CallThreads, name: str, gate: threading.Event | None = None):  # type: ignore[no-untyped-def]
    seen: dict[str, object] = {}

    def fn() -> None:
        seen["thread"] = threading.current_thread()
        seen["name"] = threading.current_thread().name
        if gate is not None:
            gate.wait(10)

    return threads.start(fn, name), seen


def test_a_finished_call_leaves_its_thread_for_the_next_one() -> None:
    threads = CallThreads()
    done, first = _on(threads, "cronkit-python-a")
    assert done.wait(5)
    deadline = time.monotonic() + 5
    while threads.idle() != 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert threads.idle() == 1
    done, second = _on(threads, "cronkit-python-b")
    assert done.wait(5)
    assert second["thread"] is first["thread"]
    assert second["name"] == "cronkit-python-b"  # named for the call it runs
    assert first["thread"].daemon  # type: ignore[attr-defined]


def test_a_call_still_running_keeps_its_thread_and_the_next_call_gets_another() -> None:
    threads = CallThreads()
    gate = threading.Event()
    slow, first = _on(threads, "slow", gate)
    fast, second = _on(threads, "fast")
    assert fast.wait(5)
    assert not slow.is_set()  # a straggler is not interrupted or shared
    assert second["thread"] is not first["thread"]
    gate.set()
    assert slow.wait(5)


def test_an_idle_thread_ends_after_idle_seconds() -> None:
    threads = CallThreads()
    threads.IDLE = 0.05
    done, seen = _on(threads, "once")
    assert done.wait(5)
    thread = seen["thread"]
    assert isinstance(thread, threading.Thread)
    thread.join(5)
    assert not thread.is_alive()
    assert threads.idle() == 0
    done, again = _on(threads, "again")  # a later call starts a fresh one
    assert done.wait(5) and again["thread"] is not thread


def test_an_exception_in_a_call_is_logged_signals_done_and_the_thread_serves_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    threads = CallThreads()
    ran_on: list[threading.Thread] = []

    def boom() -> None:
        ran_on.append(threading.current_thread())
        raise RuntimeError("the runner promised not to")

    done = threads.start(boom, "boom")
    assert done.wait(5)
    deadline = time.monotonic() + 5
    while threads.idle() != 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    done, after = _on(threads, "after")
    assert done.wait(5)
    assert after["thread"] is ran_on[0]
    assert any("boom: a call raised" in r.getMessage() for r in caplog.records)


def test_start_own_thread_runs_each_call_on_a_new_daemon_thread() -> None:
    seen: list[threading.Thread] = []
    for _ in range(2):
        done = start_own_thread(lambda: seen.append(threading.current_thread()), "own")
        assert done.wait(5)
    assert seen[0] is not seen[1] and all(t.daemon for t in seen)
