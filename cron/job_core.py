"""What every read and write of a job shares: the store's clock, the compare-and-set
loop, and what follows a successful mutation (the audit's event row, the change bus).

The job API is layered over this module, the dependency pointing down:
:mod:`cron.jobs` (create, declare, read — and the SPEC §3 names callers import),
:mod:`cron.job_edits` (update, pause, resume, remove) and :mod:`cron.job_claims`
(the claim protocol) all write through here; it imports none of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from cron import changes
from cron.model import JobDoc
from cron.schedule import compute_next_run
from cron.store import get_store

T = TypeVar("T")


def _now(now: datetime | None) -> datetime:
    # No ``now``: the store's clock (a shared database's, SPEC §11), so node clocks
    # may drift without two nodes disagreeing about whether a claim is stale.
    if now is None:
        return get_store().clock()
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)
    return now.astimezone(UTC)


def add_change_listener(fn: Callable[[], None]) -> None:
    """Call ``fn()`` after every successful mutation in this process (``cron.changes.bus``)."""
    changes.bus.subscribe(fn)


def remove_change_listener(fn: Callable[[], None]) -> None:
    changes.bus.unsubscribe(fn)


def _notify_changed() -> None:
    # The mutation is already durable: the bus logs a failing listener, never raises.
    changes.bus.publish()


def _first_run(schedule: dict[str, Any], now: datetime) -> datetime | None:
    if schedule["kind"] == "interval":
        return compute_next_run(schedule, after=now)
    return compute_next_run(schedule, after=now, tz=schedule.get("tz"))


def json_copy(job: JobDoc) -> JobDoc:
    copied: JobDoc = json.loads(json.dumps(job))
    return copied


def _encoded(job: JobDoc) -> str:
    return json.dumps(job, sort_keys=True, separators=(",", ":"))


CAS_ATTEMPTS = 100
"""Bound on compare-and-set retries of one job; each loss means another writer won."""


def _cas(job_id: str, fn: Callable[[JobDoc | None], T]) -> T:
    """Read the job, apply ``fn`` to the copy, swap it back if it changed; retry a lost swap.

    ``fn`` gets None for a missing job and may raise to abort (nothing is
    written). A lost swap means someone else changed the job in between: the
    rule is applied again to what they wrote, never to a stale copy.
    """
    store = get_store()
    for _ in range(CAS_ATTEMPTS):
        stored = store.get(job_id)
        if stored is None:
            return fn(None)
        job = stored.job
        before = _encoded(job)
        result = fn(job)
        if _encoded(job) == before:
            return result
        if store.swap(job_id, stored.rev, job) is not None:
            return result
    raise TimeoutError(f"job {job_id!r}: {CAS_ATTEMPTS} writers in a row changed it first")


def get_job(job_id: str) -> JobDoc | None:
    stored = get_store().get(job_id)
    return stored.job if stored is not None else None


def _record_event(kind: str, job: JobDoc, at: datetime, before: JobDoc | None = None) -> None:
    # The audit's record of when the job was owed slots (best-effort, never raises).
    from cron.job_events import record_job_event

    record_job_event(kind, job, at=at, before=before)


__all__ = [
    "CAS_ATTEMPTS",
    "add_change_listener",
    "get_job",
    "json_copy",
    "remove_change_listener",
]
