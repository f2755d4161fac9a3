"""What a runner receives and returns (SPEC §6): the run's context, its result.

Shared by the runner registry (:mod:`cron.runners`, which re-exports all of it)
and the built-in runners (:mod:`cron.command_runner`, :mod:`cron.python_runner`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cron.procgroup import ProcessGroup

MAX_OUTPUT_BYTES = 1024 * 1024
"""Captured output is capped here; the tail is kept (errors usually come last)."""

TERM_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL when a command times out."""

DRAIN_GRACE = 1.0
"""Seconds to keep reading output after the shell exits while a background
process it started still holds the output pipe open."""

SpawnHook = Callable[[ProcessGroup], bool]
StartCall = Callable[[Callable[[], None], str], threading.Event]
"""Run ``fn`` (which never raises) on a daemon thread named ``name``; the event is set
once it has returned."""


class OutputSink(Protocol):
    """Where a runner streams a run's output as it is produced (the run's output file).

    ``write`` takes raw bytes and never raises for an ordinary I/O failure (the
    run must not fail because its log could not be written).
    """

    def write(self, data: bytes) -> None: ...


@dataclass(frozen=True)
class RunContext:
    """How to run one fire: ``timeout`` in seconds (None or <= 0: none), the fired slot.

    ``on_spawn(group)``, when given, is called by a runner that starts a process
    group, after the group exists and before the action's own command runs; it
    returns False to cancel the run before the command starts (its caller is
    shutting down). The scheduler records the group on the ledger row there,
    so no command ever runs unrecorded.

    ``output``, when given, receives the action's output as it is produced
    (the scheduler passes the run's output file, so ``cronkit logs -f`` can
    follow it). A runner that writes anything there has streamed its output:
    the returned ``RunResult.output`` is then not written to the file again.
    A runner that ignores it gets its returned output written at the end.
    """

    timeout: float | None
    scheduled_at: str | None
    env: Mapping[str, str] | None = None
    on_spawn: SpawnHook | None = None
    output: OutputSink | None = None
    start_call: StartCall | None = None
    """Where a runner that needs a thread of its own for the action starts it (the
    runtime's reusable threads, :class:`cron.call_threads.CallThreads`); None: a new
    daemon thread per call (:func:`cron.call_threads.start_own_thread`)."""


@dataclass(frozen=True)
class Straggler:
    """Work a runner could not stop at its timeout; it still runs in this process.

    ``thread`` is doing it, or ``done`` is set once it has (a thread kept for
    reuse lives on after the work); ``final()`` is the run's result once it has
    ended. The scheduler keeps the job's claim (and the ledger row ``running``)
    until then, so no second run of the job starts beside it.
    """

    thread: threading.Thread | None
    final: Callable[[], RunResult]
    done: threading.Event | None = None

    def alive(self) -> bool:
        if self.done is not None:
            return not self.done.is_set()
        return self.thread is not None and self.thread.is_alive()

    def wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (None: forever); True once the work ended."""
        if self.done is not None:
            return self.done.wait(timeout)
        if self.thread is not None:
            self.thread.join(timeout)
        return not self.alive()


@dataclass(frozen=True)
class RunResult:
    """Outcome of one run. ``status`` is ok|error|timeout|interrupted; ``error`` is one line.

    ``straggler`` is set by a runner that returned at its timeout while the
    work goes on (it cannot be stopped); see :class:`Straggler`.
    """

    status: str
    output: str
    error: str | None
    exit_code: int | None = None
    straggler: Straggler | None = field(default=None, compare=False, repr=False)


Runner = Callable[[dict[str, Any], RunContext], RunResult]


# --- output capping -------------------------------------------------------------


class Tail:
    """Keep the last ``limit`` bytes of a stream without holding all of it."""

    def __init__(self, limit: int = MAX_OUTPUT_BYTES) -> None:
        self.limit = limit
        self.buf = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        self.buf += chunk
        # Trim only when well past the limit so trimming stays amortised O(1).
        if len(self.buf) > 2 * self.limit:
            cut = len(self.buf) - self.limit
            self.dropped += cut
            del self.buf[:cut]

    def text(self) -> str:
        if len(self.buf) > self.limit:
            cut = len(self.buf) - self.limit
            self.dropped += cut
            del self.buf[:cut]
        text = bytes(self.buf).decode("utf-8", "replace")
        if self.dropped:
            text = f"[cronkit: output truncated, first {self.dropped} bytes dropped]\n" + text
        return text


def cap_text(text: str) -> str:
    tail = Tail()
    tail.add(text.encode("utf-8", "replace"))
    return tail.text()


def one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) if "\n" in text else text


__all__ = [
    "DRAIN_GRACE",
    "MAX_OUTPUT_BYTES",
    "TERM_GRACE",
    "OutputSink",
    "RunContext",
    "RunResult",
    "Runner",
    "SpawnHook",
    "StartCall",
    "Straggler",
    "Tail",
    "cap_text",
    "one_line",
]
