"""The due index kept up to date write by write equals one rebuilt from scratch.

``JsonJobStore`` carries its due index (what ``wake_at`` and the batch claim read)
from one write to the next with :meth:`DueIndex.with_changes`, instead of
re-reading every job's timestamps after each write. Hypothesis generates a store
and a sequence of rewrites of some of its jobs (rescheduled, paused, spent with or
without a crashed claim, completed); after every step the incremental index must
equal ``due_index(jobs)`` built fresh. A mismatch means a job that fires late or
never (missing entry) or a tick that wakes for nothing (stale entry).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cron.store import due_index

T0 = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
TTL = 300.0

instants = st.integers(min_value=0, max_value=3 * 86400).map(
    lambda s: (T0 + timedelta(seconds=s)).isoformat()
)
job_fields = st.fixed_dictionaries(
    {
        "enabled": st.booleans(),
        "state": st.sampled_from(["scheduled", "scheduled", "paused", "completed"]),
        "next_run_at": st.one_of(st.none(), instants),
        "fire_claim": st.one_of(st.none(), st.fixed_dictionaries({"at": instants})),
    }
)


def _job(i: int, fields: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"{i:012x}", **fields}


@given(
    initial=st.lists(job_fields, min_size=0, max_size=12),
    steps=st.lists(
        st.lists(st.tuples(st.integers(min_value=0, max_value=11), job_fields), max_size=4),
        max_size=8,
    ),
)
def test_incremental_due_index_equals_a_rebuild(
    initial: list[dict[str, Any]], steps: list[list[tuple[int, dict[str, Any]]]]
) -> None:
    jobs = [_job(i, f) for i, f in enumerate(initial)]
    index = due_index(jobs, claim_ttl=TTL)
    for step in steps:
        changed: dict[str, dict[str, Any]] = {}
        for pos, fields in step:
            if pos >= len(jobs):
                continue
            jobs[pos] = _job(pos, fields)
            changed[jobs[pos]["id"]] = jobs[pos]
        index = index.with_changes(list(changed.values()), [], claim_ttl=TTL)
        fresh = due_index(jobs, claim_ttl=TTL)
        assert index.entries == fresh.entries
        assert index.by_id == fresh.by_id
        # The read side agrees too: the next wake-up and what is due at each instant.
        assert index.wake_at() == fresh.wake_at()
        for entry_at, _ in fresh.entries:
            assert index.due_ids(entry_at) == fresh.due_ids(entry_at)
