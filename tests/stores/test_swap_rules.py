"""The store seam's insert and compare-and-set rules that the shared contract leaves open,
on every built-in backend (SPEC §3, §10; ``cron.stores.JobStore``'s docstrings).

- ``swap`` of a job under another id is refused with a ``ValueError`` naming both ids,
  and changes nothing;
- a duplicate insert (one or a batch, alone or after other jobs) names the field that
  clashed and overwrites nothing;
- a won swap re-indexes the job's wake time (SPEC §3: a spent job whose final run holds a
  claim wakes when that claim goes stale), so ``next_wake`` follows every write;
- a job's ledger stays bounded however often it is claimed (SPEC §5, bounded retention).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cron.errors import DuplicateJobError
from cron.ledger_sql import KEEP_PER_JOB, LedgerRow
from cron.stores import JobStore, Swap
from cron.stores.json import JsonJobStore
from cron.stores.sqlite import SqliteJobStore
from cron.testing.store import T0, make_job


@pytest.fixture(params=["json", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, home: Path) -> Iterator[JobStore]:
    s: JobStore
    if request.param == "json":
        s = JsonJobStore(home / "rules" / "jobs.json")
    elif request.param == "sqlite":
        (home / "rules").mkdir(parents=True)
        s = SqliteJobStore(home / "rules" / "cronkit.db")
    else:
        from cron.stores.postgres import PostgresJobStore

        s = PostgresJobStore(request.getfixturevalue("pg_url"))
    yield s
    s.close()


def test_a_swap_under_another_id_is_a_value_error_and_changes_nothing(store: JobStore) -> None:
    job = make_job("aaaaaaaaaaaa")
    first = store.insert(job)
    other = make_job("bbbbbbbbbbbb", name="intruder")
    with pytest.raises(ValueError, match="'aaaaaaaaaaaa'.*'bbbbbbbbbbbb'"):
        store.swap(job["id"], first.rev, other)
    with pytest.raises(ValueError, match="'aaaaaaaaaaaa'.*'bbbbbbbbbbbb'"):
        store.swap_many([Swap(job["id"], first.rev, other)])
    got = store.get(job["id"])
    assert got is not None and (got.job, got.rev) == (job, first.rev)
    assert store.get("bbbbbbbbbbbb") is None


def test_a_duplicate_insert_names_the_field_that_clashed(store: JobStore) -> None:
    store.insert(make_job("cccccccccccc", key="nightly"))
    with pytest.raises(DuplicateJobError) as by_id:
        store.insert(make_job("cccccccccccc"))
    assert (by_id.value.field, by_id.value.value) == ("id", "cccccccccccc")
    with pytest.raises(DuplicateJobError) as by_id_with_key:
        store.insert(make_job("cccccccccccc", key="other"))
    assert (by_id_with_key.value.field, by_id_with_key.value.value) == ("id", "cccccccccccc")
    with pytest.raises(DuplicateJobError) as by_key:
        store.insert(make_job("dddddddddddd", key="nightly"))
    assert (by_key.value.field, by_key.value.value) == ("key", "nightly")
    assert store.count() == 1


def test_jobs_without_a_key_never_clash_on_it(store: JobStore) -> None:
    store.insert(make_job("eeeeeeeeeeee"))
    store.insert(make_job("ffffffffffff"))
    assert [s.job["id"] for s in store.scan()] == ["eeeeeeeeeeee", "ffffffffffff"]


@pytest.mark.parametrize("after_others", [False, True], ids=["alone", "after-others"])
@pytest.mark.parametrize("clash", ["id", "key"])
def test_insert_many_raises_on_a_duplicate_and_keeps_the_stored_job(
    store: JobStore, clash: str, after_others: bool
) -> None:
    taken = make_job("000000000001", key="taken")
    first = store.insert(taken)
    dup = (
        make_job("000000000001", key="free")
        if clash == "id"
        else make_job("000000000003", key="taken")
    )
    # Jobs ahead of the duplicate, one of them a spent job holding its final claim (its
    # wake time is the claim's expiry): the error is still the duplicate's. Whether they
    # are kept is not checked: JobStore.insert_many says so, the json and PostgreSQL stores
    # keep them, the SQLite store rolls the whole batch back (an open question).
    others = [
        make_job("000000000004", next_run_at=None, times=1, completed=1, claim_at=T0),
        make_job("000000000005"),
    ]
    with pytest.raises(DuplicateJobError) as info:
        store.insert_many([*others, dup] if after_others else [dup])
    assert (info.value.field, info.value.value) == (clash, dup[clash])
    got = store.get("000000000001")
    assert got is not None and (got.job, got.rev) == (taken, first.rev)
    assert store.insert_many([]) == []


def test_an_inserted_job_is_stored_as_a_copy_and_its_revision_swaps(store: JobStore) -> None:
    job = make_job("0000000000aa")
    inserted = store.insert(job)
    assert inserted.job == job
    job["name"] = "changed after the insert"
    got = store.get("0000000000aa")
    assert got is not None and got.job["name"] == "contract job"
    assert got.rev == inserted.rev
    new = dict(got.job, name="swapped")
    won = store.swap("0000000000aa", inserted.rev, new)
    assert won is not None and won.job == new and won.rev != inserted.rev
    assert store.swap("0000000000aa", inserted.rev, new) is None  # that revision is gone


def test_every_write_reindexes_the_wake_time(store: JobStore) -> None:
    ttl = store.claim_ttl
    inserted = store.insert(make_job("0000000000bb", next_run_at=T0 + timedelta(hours=2)))
    store.insert_many([make_job("0000000000cc", next_run_at=T0 + timedelta(hours=3))])
    assert store.next_wake() == T0 + timedelta(hours=2)
    # The final run of a spent job holds a claim: it wakes when the claim goes stale.
    final = make_job("0000000000bb", next_run_at=None, times=1, completed=1, claim_at=T0)
    won = store.swap("0000000000bb", inserted.rev, final)
    assert won is not None
    assert store.next_wake() == T0 + timedelta(seconds=ttl)
    [due] = store.scan(due_by=T0 + timedelta(seconds=ttl))
    assert due.job["id"] == "0000000000bb"
    paused = dict(final, enabled=False, state="paused")
    [res] = store.swap_many([Swap("0000000000bb", won.rev, paused)])
    assert res is not None
    assert store.next_wake() == T0 + timedelta(hours=3)
    # the batch form indexes a final claim the same way
    [back] = store.swap_many([Swap("0000000000bb", res.rev, final)])
    assert back is not None
    assert store.next_wake() == T0 + timedelta(seconds=ttl)


def test_a_batch_that_wins_changes_the_version_and_one_that_loses_does_not(
    store: JobStore,
) -> None:
    a = store.insert(make_job("0000000000f1"))
    b = store.insert(make_job("0000000000f2"))
    before = store.version()
    out = store.swap_many(
        [
            Swap("0000000000f1", a.rev, make_job("0000000000f1", name="a2")),
            Swap("0000000000f2", b.rev, make_job("0000000000f2", name="b2")),
        ]
    )
    assert all(o is not None for o in out)
    after = store.version()
    assert after != before, "a write every item won must change the version"
    lost = store.swap_many([Swap("0000000000f1", a.rev, make_job("0000000000f1", name="a3"))])
    assert lost == [None]
    assert store.version() == after, "a batch that changed nothing leaves the version alone"


def test_a_jobs_ledger_stays_bounded_however_often_it_is_claimed(store: JobStore) -> None:
    # SPEC §5, bounded retention: a job keeps its newest KEEP_PER_JOB rows. A PostgreSQL
    # store prunes off the claim's statement, once every PRUNE_EVERY rows it added for a
    # job, so there the bound holds within PRUNE_EVERY (cron.stores.postgres).
    from cron.stores.postgres import PRUNE_EVERY

    job = make_job("0000000000e1")
    rev = store.insert(job).rev
    # A full ledger of old missed slots, then many claims, each with its claimed row.
    history = [
        _ledger_row(job["id"], "missed", T0 - timedelta(minutes=KEEP_PER_JOB - i))
        for i in range(KEEP_PER_JOB)
    ]
    store.write_rows(history)
    claims = [
        _ledger_row(job["id"], "claimed", T0 + timedelta(minutes=i)) for i in range(2 * PRUNE_EVERY)
    ]
    for i, row in enumerate(claims):
        [won] = store.swap_many([Swap(job["id"], rev, dict(job, name=f"claim {i}"), (row,))])
        assert won is not None
        rev = won.rev
    with store.ledger().read() as conn:
        assert conn is not None
        kept = {
            r[0] for r in conn.execute("SELECT id FROM executions WHERE job_id = ?", (job["id"],))
        }
    assert KEEP_PER_JOB <= len(kept) <= KEEP_PER_JOB + PRUNE_EVERY, len(kept)
    assert {r.id for r in claims} <= kept, "the newest rows (and live ones) are kept"
    assert history[0].id not in kept, "the oldest rows are pruned"


def _ledger_row(job_id: str, status: str, at: datetime) -> LedgerRow:
    when = at.isoformat()
    return LedgerRow(uuid.uuid4().hex, job_id, status, when, when, "test", "test:1:1", "job")
