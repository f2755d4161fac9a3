"""Batched bookkeeping of a runtime's pool runs: starts first, then results in one write.

Kept on measurement (see the runtime commit): with bookkeeping on the workers,
200 jobs due the same second started up to 5x later, because each worker
wrote its previous run's result (a store write and a ledger write) before it
took the next queued start. Workers hand each finished run here instead; one
thread records the runs that finished together with one store write and one
ledger transaction, after the queued starts have gone (bounded by
:data:`BOOKKEEPING_MAX_DELAY`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from cron.claim_keeper import Spawn
from cron.live_runs import Ran
from cron.retry_path import Retry
from cron.run_path import Adapters

BOOKKEEPING_MAX_DELAY = 0.25
"""How long result bookkeeping may wait for a burst of queued starts (seconds)."""

Loop = asyncio.AbstractEventLoop | None
Finish = Callable[[list[Ran], "Adapters | None", Loop], list["bool | Retry"]]
"""Record a batch of runs (``cron.run_path.finish_runs`` with the runtime's parts)."""
OnRetry = Callable[[Retry, "Adapters | None", Loop, "Future[bool]"], None]


class StartQueue:
    """How many dispatched runs have not started yet (the completer lets them go first).

    A run counts until its start bookkeeping is written and its action is about to
    run, not merely until a worker took it: the last starts of a burst are then
    not shared with the finished runs' batch.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queued = 0

    def add(self, delta: int) -> None:
        with self._cond:
            self._queued += delta
            if self._queued == 0:
                self._cond.notify_all()

    def settled(self, timeout: float) -> None:
        """Wait until every dispatched run has started, or ``timeout`` passes."""
        with self._cond:
            self._cond.wait_for(lambda: self._queued == 0, timeout=timeout)


class Completer:
    """One thread (started on demand, gone after 30 s idle) recording finished runs in batches."""

    def __init__(self, finish: Finish, on_retry: OnRetry, starts: StartQueue, spawn: Spawn) -> None:
        self._finish = finish
        self._on_retry = on_retry
        self._starts = starts
        self._spawn = spawn
        self._cond = threading.Condition()
        self._queue: list[tuple[Ran, Adapters | None, Loop, Future[bool]]] = []
        self._thread: threading.Thread | None = None

    def submit(self, ran: Ran, adapters: Adapters | None, loop: Loop, fut: Future[bool]) -> None:
        with self._cond:
            self._queue.append((ran, adapters, loop, fut))
            if self._thread is None or not self._thread.is_alive():
                self._thread = self._spawn(self._run, "cronkit-completer")
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    if not self._cond.wait(timeout=30):
                        self._thread = None
                        return
            # Starts before bookkeeping: while a burst still waits for workers, the
            # output files and result writes would compete with those starts for
            # the GIL. They wait (bounded) and are then written in one bigger batch.
            self._starts.settled(BOOKKEEPING_MAX_DELAY)
            with self._cond:
                batch, self._queue = self._queue, []
            # Group by delivery target so each group shares one bookkeeping pass.
            groups: dict[tuple[int, int], list[tuple[Ran, Future[bool]]]] = {}
            targets: dict[tuple[int, int], tuple[Adapters | None, Any]] = {}
            for ran, adapters, loop, fut in batch:
                key = (id(adapters), id(loop))
                groups.setdefault(key, []).append((ran, fut))
                targets[key] = (adapters, loop)
            for key, items in groups.items():
                adapters, loop = targets[key]
                try:
                    oks = self._finish([r for r, _ in items], adapters, loop)
                except BaseException as exc:  # noqa: B036 - handed to the waiters
                    for _, fut in items:
                        fut.set_exception(exc)
                    continue
                for (_, fut), ok in zip(items, oks, strict=True):
                    if isinstance(ok, Retry):
                        self._on_retry(ok, adapters, loop, fut)
                    else:
                        fut.set_result(ok)


__all__ = ["BOOKKEEPING_MAX_DELAY", "Completer", "StartQueue"]
