"""The claim keeper: held claims re-dated in batched rounds, and self-fencing (SPEC §3, §13).

A run's claim says "a live process runs this slot"; another node takes the
claim over only once it is ``claim_ttl`` old by the database's clock. The
keeper re-dates every claim its runtime holds, one store write per round,
and hands the runs whose claims it could not re-date for too long to the
runtime's fence (see :data:`FENCE_MARGIN`), so they end before the claim can
go stale.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from cron import jobs, procgroup

log = logging.getLogger(__name__)

Spawn = Callable[[Callable[[], None], str], threading.Thread]
"""Start ``fn`` on a daemon thread named ``name`` (in the runtime's home and store)."""


def plain_spawn(fn: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=fn, name=name, daemon=True)
    thread.start()
    return thread


@dataclass
class Held:
    """One claim the keeper keeps alive (times on the local monotonic clock)."""

    job_id: str
    ttl: float
    every: float
    due: float
    """When to refresh it next."""
    confirmed: float
    """A moment no later than the claim's current date: the start of the last refresh
    that succeeded (the store dates the claim after that), or of the claim itself."""
    fenced: bool = False

    @property
    def fence_at(self) -> float:
        return self.confirmed + self.ttl - self.every * FENCE_MARGIN


FENCE_MARGIN = 1.0
"""Refresh intervals (``claim_ttl / 3``) between fencing a run and its claim going stale.

A claim is refreshed every third of ``claim_ttl``; after a failed refresh it is
retried every twelfth. A run whose claim has not been confirmed for
``claim_ttl - claim_ttl / 3`` (two regular attempts, plus the quick retries
between them, all failed) is ended then: its group gets SIGTERM and, after at
most half an interval (:func:`fence_grace`), SIGKILL — so it is gone with
half an interval (``claim_ttl / 6``) to spare before another node may judge
the claim stale by the database's clock. One interval, not two: with
refreshes every third of the ttl, two would fence at the first missed refresh.
"""
FENCE_RETRY = 4
"""A failed refresh round is retried after ``claim_ttl / 3 / FENCE_RETRY`` seconds."""


def fence_grace(ttl: float) -> float:
    """SIGTERM → SIGKILL grace for a fenced run: it must be gone before its claim is stale."""
    return min(procgroup.TERM_GRACE, ttl / 6)


FenceHook = Callable[[list[tuple[str, str, float]]], None]
"""Called with ``(job_id, token, seconds unconfirmed)`` of claims about to go stale."""


class ClaimKeeper:
    """Re-dates held claims every ``claim_ttl / 3`` so they never look crashed — and fences.

    One thread for the whole process (not one per run): holding a claim is a
    dict insert, so starting a job costs no thread start. Every claim due for
    a refresh (or due within half an interval) is re-dated in one round, one
    store write (``jobs.refresh_claims``: one ``swap_many``). A round runs on a
    short-lived thread of its own, so a store call that hangs (a partitioned
    network) never delays the fencing check: a claim not confirmed for
    ``claim_ttl`` minus :data:`FENCE_MARGIN` intervals is handed to ``on_fence``
    so its run ends before any node may take the claim over (SPEC §13).
    """

    def __init__(self, on_fence: FenceHook | None = None, spawn: Spawn = plain_spawn) -> None:
        self._spawn = spawn
        self._cond = threading.Condition()
        self._held: dict[str, Held] = {}
        self._thread: threading.Thread | None = None
        self._in_round = False
        self._on_fence = on_fence
        self.rounds = 0
        """Refresh rounds started (each one store write)."""

    def add_many(
        self, held: list[tuple[str, str]], ttl: float, *, since: float | None = None
    ) -> None:
        """Keep the claims of these ``(job_id, token)`` pairs alive until :meth:`release`.

        ``since`` (monotonic) is when the claims were taken, if before now.
        """
        every = max(ttl / 3, 0.05)
        with self._cond:
            now = time.monotonic()
            confirmed = min(since, now) if since is not None else now
            for job_id, token in held:
                self._held[token] = Held(job_id, ttl, every, confirmed + every, confirmed)
            if self._thread is None or not self._thread.is_alive():
                self._thread = self._spawn(self._run, "cronkit-claim-keeper")
            self._cond.notify()

    def release(self, token: str) -> None:
        with self._cond:
            self._held.pop(token, None)

    @contextlib.contextmanager
    def hold(self, job_id: str, token: str, ttl: float) -> Iterator[None]:
        """Keep one claim alive for the block (a run not queued through ``dispatch``)."""
        with self._cond:
            kept = self._held.get(token)
        if kept is not None:
            # Already held (since dispatch): keep its record, or the time it went unconfirmed.
            yield
            return
        self.add_many([(job_id, token)], ttl)
        try:
            yield
        finally:
            self.release(token)

    def _run(self) -> None:
        while True:
            fence: list[tuple[str, str, float]] = []
            pairs: list[tuple[str, str]] = []
            with self._cond:
                if not self._held and not self._in_round:
                    if not self._cond.wait(timeout=30) and not self._held:
                        self._thread = None
                        return
                    continue
                now = time.monotonic()
                for token, h in self._held.items():
                    if not h.fenced and now >= h.fence_at:
                        h.fenced = True
                        fence.append((h.job_id, token, now - h.confirmed))
                if not self._in_round and any(h.due <= now for h in self._held.values()):
                    # Those due soon ride along: one write per round, fewer rounds.
                    pairs = [
                        (h.job_id, t) for t, h in self._held.items() if h.due <= now + h.every / 2
                    ]
                    self._in_round = True
                    self.rounds += 1
                if not fence and not pairs:
                    wake = [h.fence_at for h in self._held.values() if not h.fenced]
                    if not self._in_round:
                        wake += [h.due for h in self._held.values()]
                    self._cond.wait(timeout=max(0.0, min(wake, default=now + 30) - now))
                    continue
            if pairs:
                self._spawn(
                    functools.partial(self._refresh_round, pairs, now), "cronkit-claim-refresh"
                )
            if fence and self._on_fence is not None:
                try:
                    self._on_fence(fence)
                except Exception:
                    log.exception("could not fence %d run(s)", len(fence))

    def _refresh_round(self, pairs: list[tuple[str, str]], started: float) -> None:
        try:
            held = jobs.refresh_claims(pairs)
        except Exception:
            log.warning("could not refresh %d claim(s)", len(pairs), exc_info=True)
            with self._cond:
                now = time.monotonic()
                for _job_id, token in pairs:
                    h = self._held.get(token)
                    if h is not None:
                        h.due = now + h.every / FENCE_RETRY
                self._in_round = False
                self._cond.notify()
            return
        with self._cond:
            for (_job_id, token), still in zip(pairs, held, strict=True):
                h = self._held.get(token)
                if h is None:
                    continue
                if still:
                    h.confirmed = max(h.confirmed, started)
                    h.due = started + h.every
                else:
                    self._held.pop(token, None)  # the claim is gone
            self._in_round = False
            self._cond.notify()


__all__ = [
    "FENCE_MARGIN",
    "FENCE_RETRY",
    "ClaimKeeper",
    "FenceHook",
    "Held",
    "Spawn",
    "fence_grace",
    "plain_spawn",
]
