"""Reusable daemon threads for work a runner must be able to stop waiting for.

The python runner calls a target on a thread of its own so it can stop
waiting at the job's timeout (a Python thread cannot be killed). Starting a
thread per run cost more than a short target's whole run on a busy pool: the
new thread must get the GIL before ``Thread.start`` returns, behind the
other workers. A :class:`CallThreads` keeps finished threads for the next
call instead; each thread stays with its call for as long as the call runs
(a straggler past its timeout keeps it), and one idle for :attr:`IDLE`
seconds ends. Threads are daemons, as before: a call still running when the
process exits dies with it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Call = Callable[[], None]


class CallThreads:
    """Run calls on daemon threads, reusing idle ones (see the module docstring)."""

    IDLE = 30.0
    """Seconds an idle thread waits for another call before it ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[tuple[Call, threading.Event, str]]] = []

    def start(self, fn: Call, name: str) -> threading.Event:
        """Run ``fn`` (which must not raise) on an idle thread or a new one named ``name``.

        Returns an event set once ``fn`` has returned.
        """
        done = threading.Event()
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is not None:
            inbox.put((fn, done, name))
            return done
        inbox = queue.SimpleQueue()
        inbox.put((fn, done, name))
        threading.Thread(target=self._serve, args=(inbox,), name=name, daemon=True).start()
        return done

    def idle(self) -> int:
        """How many threads wait for a call now."""
        with self._lock:
            return len(self._idle)

    def _serve(self, inbox: queue.SimpleQueue[tuple[Call, threading.Event, str]]) -> None:
        fn, done, name = inbox.get()
        while True:
            threading.current_thread().name = name
            try:
                fn()
            except Exception:
                log.exception("%s: a call raised (its runner should have caught it)", name)
            finally:
                done.set()
            with self._lock:
                self._idle.append(inbox)
            try:
                fn, done, name = inbox.get(timeout=self.IDLE)
            except queue.Empty:
                with self._lock:
                    if inbox in self._idle:
                        self._idle.remove(inbox)
                        return
                # Handed a call just as the wait ran out: it is ours.
                fn, done, name = inbox.get()


def start_own_thread(fn: Call, name: str) -> threading.Event:
    """:meth:`CallThreads.start` without reuse: a new daemon thread for this call."""
    done = threading.Event()

    def run() -> None:
        try:
            fn()
        finally:
            done.set()

    threading.Thread(target=run, name=name, daemon=True).start()
    return done


__all__ = ["Call", "CallThreads", "start_own_thread"]
