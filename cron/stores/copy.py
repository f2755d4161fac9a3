"""``cronkit store copy``: every job, ids and state unchanged, from one store into another."""

from __future__ import annotations

from cron.errors import StoreConfigError
from cron.stores import JobStore


def copy_jobs(source: JobStore, target: JobStore) -> int:
    """Copy every job of ``source`` into the empty ``target``; return how many were copied.

    The source is only read. A target that already holds jobs is refused
    before anything is written: merging two stores could give one id two
    meanings. The copy is one ``insert_many`` (one transaction on a database).
    Claims are copied as they are, so a run in flight keeps its claim and its
    result is still fenced by its token.
    """
    held = target.count()
    if held:
        raise StoreConfigError(
            target.url, f"already holds {held} job(s); copy only into an empty store"
        )
    jobs = [s.job for s in source.scan()]
    if jobs:
        target.insert_many(jobs)
    return len(jobs)
