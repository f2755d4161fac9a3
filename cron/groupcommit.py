"""Group commit: requests that arrive together share one durable write.

A durable write to ``jobs.json`` costs two ``fsync``s whatever it carries, so
N threads each writing their own change pay N times for what one write could
hold. :class:`GroupCommit` queues requests; the first caller becomes the
leader and hands every request queued meanwhile to ``write`` in one call; the
others block until their batch is written. Each caller still returns only once
its own request is done, so the API built on it stays synchronous — a burst of
N requests costs about one write instead of N, and a lone request costs what it
did before (the leader finds only itself).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar


class _Waiter:
    """One blocked ``submit`` call: woken when its requests are done or it must lead."""

    __slots__ = ("event", "lead")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.lead = False


@dataclass(kw_only=True)
class Pending:
    """One queued request: ``write`` fills its results; ``failure`` is re-raised to its caller."""

    done: bool = False
    failure: BaseException | None = None
    _waiter: _Waiter | None = field(default=None, repr=False, compare=False)


P = TypeVar("P", bound=Pending)


class GroupCommit(Generic[P]):
    """Leader/follower batching around ``write(batch)``.

    ``write`` gets the requests in arrival order and must fill each one's
    results; if it raises, every request in the batch gets the exception as
    its ``failure``. It runs on one thread at a time in this process. A leader
    writes one batch — the one holding its own requests — and returns; it
    passes leadership to the caller of the oldest request still queued, so no
    caller is kept writing other callers' requests under sustained load. Only
    the callers whose requests were written, and the next leader, are woken.
    """

    def __init__(self, write: Callable[[list[P]], None]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._pending: list[P] = []
        self._leading = False

    @property
    def queued(self) -> int:
        """Requests waiting for a leader right now (not counting a batch being written)."""
        with self._lock:
            return len(self._pending)

    def submit(self, req: P) -> P:
        """Queue ``req``, wait until it is written, and return it (``failure`` raised)."""
        return self.submit_many([req])[0]

    def submit_many(self, reqs: list[P]) -> list[P]:
        """Queue ``reqs`` together, wait until all are written, return them.

        They land in the same batch (with whatever else is queued). The first
        ``failure`` among them is raised.
        """
        if not reqs:
            return reqs
        me = _Waiter()
        for req in reqs:
            req._waiter = me
        with self._lock:
            self._pending.extend(reqs)
            me.lead = not self._leading
            self._leading = True
        while True:
            if me.lead:
                me.lead = False
                self._lead()
            if all(req.done for req in reqs):
                break
            try:
                me.event.wait()
            except BaseException:
                self._abandon(me)  # e.g. KeyboardInterrupt in the main thread
                raise
            # Flags are set before the event: checked after clearing, none is missed.
            me.event.clear()
        for req in reqs:
            if req.failure is not None:
                raise req.failure
        return reqs

    def _abandon(self, me: _Waiter) -> None:
        """A caller interrupted while waiting must not strand the queue.

        If leadership was already handed to it, it leads one batch (its own
        requests included) so the callers behind it are not left waiting for a
        leader that never comes; otherwise its unwritten requests are withdrawn.
        Requests already inside a batch being written still complete; the
        interrupted caller just never hears their outcome — as if it had
        crashed right after asking (a won claim then simply goes stale).
        """
        with self._lock:
            lead = me.lead
            if not lead:
                self._pending = [r for r in self._pending if r._waiter is not me]
        if lead:
            me.lead = False
            self._lead()

    def _lead(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        try:
            self._write(batch)
        except BaseException as exc:
            for queued in batch:
                queued.failure = exc
        finally:
            woken: set[int] = set()
            for queued in batch:
                queued.done = True
            with self._lock:
                if self._pending:
                    # Leadership passes to the oldest request still queued.
                    nxt = self._pending[0]._waiter
                    assert nxt is not None
                    nxt.lead = True
                    nxt.event.set()
                    woken.add(id(nxt))
                else:
                    self._leading = False
            for queued in batch:
                waiter = queued._waiter
                if waiter is not None and id(waiter) not in woken:
                    woken.add(id(waiter))
                    waiter.event.set()
