"""Editing and reading the configured store behind the job API's back (seeding, tampering).

Tests reach under ``cron.jobs`` to build states the API would never produce on
its own (a claim dated in the future, a spent job). They do it through the
store seam, so the same seeding works on every backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cron.store import get_store

Job = dict[str, Any]


def edit_job(job_id: str, fn: Callable[[Job], None]) -> Job:
    """Apply ``fn`` to the stored job and write it back (compare-and-set, retried)."""
    store = get_store()
    for _ in range(100):
        stored = store.get(job_id)
        assert stored is not None, f"no job {job_id!r} to edit"
        fn(stored.job)
        if store.swap(job_id, stored.rev, stored.job) is not None:
            return stored.job
    raise AssertionError(f"could not edit job {job_id!r}: every swap lost")


def all_jobs() -> list[Job]:
    """Every stored job, in creation order."""
    return [s.job for s in get_store().scan()]


def by_id() -> dict[str, Job]:
    return {j["id"]: j for j in all_jobs()}
