"""The store contract on single items: ``get``, ``insert``, ``swap``, ``delete`` (SPEC §10).

A mixin of :class:`cron.testing.store.StoreContract`, which supplies the
``store`` and ``installed`` fixtures; subclass ``StoreContract``, not this.
"""

from __future__ import annotations

import pytest

from cron.errors import DuplicateJobError
from cron.stores import JobStore, Swap
from cron.testing.store_support import _new_id, _renamed, make_job


class ItemsContract:
    """One job at a time: get, insert, swap and delete at a revision."""

    # -- get / insert --------------------------------------------------------------------

    def test_get_of_a_missing_id_is_none(self, store: JobStore) -> None:
        assert store.get(_new_id()) is None

    def test_insert_then_get_round_trips_the_job_with_a_revision(self, store: JobStore) -> None:
        job = make_job(key="nightly-report")
        inserted = store.insert(job)
        assert inserted.job == job
        assert inserted.rev is not None
        got = store.get(job["id"])
        assert got is not None
        assert got.job == job
        assert got.rev == inserted.rev, "an unchanged job keeps its revision"

    def test_reads_are_private_copies(self, store: JobStore) -> None:
        job = make_job()
        store.insert(job)
        got = store.get(job["id"])
        assert got is not None
        got.job["name"] = "changed by the caller"
        got.job["repeat"]["completed"] = 99
        [scanned] = store.scan()
        scanned.job["state"] = "paused"
        again = store.get(job["id"])
        assert again is not None and again.job == job

    def test_insert_of_an_existing_id_raises_and_keeps_the_stored_job(
        self, store: JobStore
    ) -> None:
        job = make_job(name="first")
        first = store.insert(job)
        with pytest.raises(DuplicateJobError):
            store.insert(_renamed(job, "second"))
        got = store.get(job["id"])
        assert got is not None
        assert (got.job, got.rev) == (job, first.rev), "an insert never overwrites"

    def test_a_second_job_with_the_same_key_raises(self, store: JobStore) -> None:
        first = make_job(key="backup")
        store.insert(first)
        other = make_job(key="backup")
        with pytest.raises(DuplicateJobError):
            store.insert(other)
        assert store.get(other["id"]) is None
        assert [s.job["id"] for s in store.scan()] == [first["id"]]

    # -- swap / delete -----------------------------------------------------------------

    def test_swap_at_the_current_revision_wins_and_changes_the_revision(
        self, store: JobStore
    ) -> None:
        job = make_job(name="before")
        rev = store.insert(job).rev
        won = store.swap(job["id"], rev, _renamed(job, "after"))
        assert won is not None
        assert won.job["name"] == "after"
        assert won.rev != rev
        got = store.get(job["id"])
        assert got is not None and (got.job["name"], got.rev) == ("after", won.rev)

    def test_swap_at_a_stale_revision_loses_and_changes_nothing(self, store: JobStore) -> None:
        job = make_job(name="v1")
        stale = store.insert(job).rev
        current = store.swap(job["id"], stale, _renamed(job, "v2"))
        assert current is not None
        assert store.swap(job["id"], stale, _renamed(job, "v3")) is None
        got = store.get(job["id"])
        assert got is not None
        assert (got.job["name"], got.rev) == ("v2", current.rev)

    def test_swap_of_a_missing_job_loses(self, store: JobStore) -> None:
        job = make_job()
        rev = store.insert(job).rev
        assert store.delete(job["id"]) is True
        assert store.swap(job["id"], rev, job) is None
        assert store.get(job["id"]) is None, "a lost swap must not re-create the job"

    def test_swap_at_a_revision_never_handed_out_loses_and_changes_nothing(
        self, store: JobStore
    ) -> None:
        # Not a stale revision: a value no store hands out. It loses like a stale one;
        # it is not an error.
        job = make_job(name="v1")
        rev = store.insert(job).rev
        # None is no revision either (a swap is never unconditional), nor is a bool
        # (True == 1 to SQL, and to Python).
        for bogus in ("no such revision", None, True, False):
            assert store.swap(job["id"], bogus, _renamed(job, "v2")) is None, bogus
        got = store.get(job["id"])
        assert got is not None and (got.job, got.rev) == (job, rev)

    def test_a_swap_that_changes_the_key_moves_it(self, store: JobStore) -> None:
        job = make_job(key="old-key")
        rev = store.insert(job).rev
        moved = dict(job, key="new-key")
        won = store.swap(job["id"], rev, moved)
        assert won is not None
        found = store.find_key("new-key")
        assert found is not None and (found.job, found.rev) == (moved, won.rev)
        assert store.find_key("old-key") is None, "the old key still finds the job"
        with pytest.raises(DuplicateJobError) as taken:
            store.insert(make_job(key="new-key"))
        assert (taken.value.field, taken.value.value) == ("key", "new-key")
        freed = make_job(key="old-key")
        store.insert(freed)
        found = store.find_key("old-key")
        assert found is not None and found.job == freed
        # The batch form; a job whose new version has no key frees its key.
        unkeyed = {k: v for k, v in moved.items() if k != "key"}
        [dropped] = store.swap_many([Swap(job["id"], won.rev, unkeyed)])
        assert dropped is not None
        assert store.find_key("new-key") is None
        store.insert(make_job(key="new-key"))

    def test_delete_without_a_revision(self, store: JobStore) -> None:
        job = make_job()
        store.insert(job)
        assert store.delete(job["id"]) is True
        assert store.get(job["id"]) is None
        assert store.delete(job["id"]) is False, "deleting a missing job removes nothing"

    def test_delete_at_a_revision_only_removes_that_revision(self, store: JobStore) -> None:
        job = make_job(name="v1")
        stale = store.insert(job).rev
        current = store.swap(job["id"], stale, _renamed(job, "v2"))
        assert current is not None
        assert store.delete(job["id"], stale) is False
        assert store.get(job["id"]) is not None, "a delete at a stale revision kept the job"
        assert store.delete(job["id"], current.rev) is True
        assert store.get(job["id"]) is None
