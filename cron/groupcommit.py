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
from dataclasses import dataclass
from typing import Generic, TypeVar


@dataclass(kw_only=True)
class Pending:
    """One queued request: ``write`` fills its results; ``failure`` is re-raised to its caller."""

    done: bool = False
    failure: BaseException | None = None


P = TypeVar("P", bound=Pending)


class GroupCommit(Generic[P]):
    """Leader/follower batching around ``write(batch)``.

    ``write`` gets the requests in arrival order and must fill each one's
    results; if it raises, every request in the batch gets the exception as
    its ``failure``. It runs on one thread at a time in this process. A leader
    writes one batch — the one holding its own request — and returns; a
    waiting caller whose request is still queued then leads the next batch, so
    no caller is kept writing other callers' requests under sustained load.
    """

    def __init__(self, write: Callable[[list[P]], None]) -> None:
        self._write = write
        self._cond = threading.Condition()
        self._pending: list[P] = []
        self._leading = False

    @property
    def queued(self) -> int:
        """Requests waiting for a leader right now (not counting a batch being written)."""
        with self._cond:
            return len(self._pending)

    def submit(self, req: P) -> P:
        """Queue ``req``, wait until it is written, and return it (``failure`` raised)."""
        return self.submit_many([req])[0]

    def submit_many(self, reqs: list[P]) -> list[P]:
        """Queue ``reqs`` together, wait until all are written, return them.

        They land in the same batch (with whatever else is queued). The first
        ``failure`` among them is raised.
        """
        with self._cond:
            self._pending.extend(reqs)
            while self._leading and not all(r.done for r in reqs):
                self._cond.wait()
            if all(r.done for r in reqs):
                batch: list[P] = []
            else:
                # Every request of ours not yet written is still queued.
                self._leading = True
                batch, self._pending = self._pending, []
        if batch:
            try:
                self._write(batch)
            except BaseException as exc:
                for queued in batch:
                    queued.failure = exc
            finally:
                with self._cond:
                    for queued in batch:
                        queued.done = True
                    self._leading = False
                    self._cond.notify_all()
        for req in reqs:
            if req.failure is not None:
                raise req.failure
        return reqs
