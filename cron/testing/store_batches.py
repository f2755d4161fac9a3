"""The store contract on batches and bookkeeping: ``swap_many`` with its ledger rows,
``insert_many``, ``version``, ``count``, ``find_key``, ``info`` (SPEC §10).

A mixin of :class:`cron.testing.store.StoreContract`, which supplies the
``store`` and ``installed`` fixtures; subclass ``StoreContract``, not this.
"""

from __future__ import annotations

import uuid

import pytest

from cron.errors import DuplicateJobError
from cron.ledger_sql import LedgerRow
from cron.stores import JobStore, Swap
from cron.testing.store_support import T0, _iso, _renamed, make_job


class BatchContract:
    """Many jobs in one write, and what a store reports about itself."""

    # -- swap_many -----------------------------------------------------------------------

    def _row(self, job_id: str) -> LedgerRow:
        return LedgerRow(
            uuid.uuid4().hex,
            job_id,
            "claimed",
            _iso(T0),
            _iso(T0),
            "contract",
            "contract:1:1",
            "contract job",
        )

    def test_swap_many_items_are_independent_and_rows_follow_the_winners(
        self, installed: JobStore
    ) -> None:
        from cron import executions

        store = installed
        a, b, c = make_job(name="a"), make_job(name="b"), make_job(name="c")
        rev_a, rev_b, rev_c = (store.insert(j).rev for j in (a, b, c))
        stale_b = rev_b
        assert store.swap(b["id"], rev_b, _renamed(b, "b moved on")) is not None
        rows = {j["id"]: self._row(j["id"]) for j in (a, b, c)}
        out = store.swap_many(
            [
                Swap(a["id"], rev_a, _renamed(a, "a2"), (rows[a["id"]],)),
                Swap(b["id"], stale_b, _renamed(b, "b2"), (rows[b["id"]],)),
                Swap(c["id"], rev_c, _renamed(c, "c2"), (rows[c["id"]],)),
            ]
        )
        assert [o is not None for o in out] == [True, False, True]
        names = {s.job["id"]: s.job["name"] for s in store.scan()}
        assert names == {a["id"]: "a2", b["id"]: "b moved on", c["id"]: "c2"}
        # A winner's Stored is the job now stored, at the revision now stored.
        for won in (out[0], out[2]):
            assert won is not None
            got = store.get(won.job["id"])
            assert got is not None and (won.job, won.rev) == (got.job, got.rev)
        ledger = {r["id"]: r for r in executions.list_executions(limit=None)}
        assert set(ledger) == {rows[a["id"]].id, rows[c["id"]].id}, "rows iff the swap won"
        assert ledger[rows[a["id"]].id]["status"] == "claimed"
        assert ledger[rows[a["id"]].id]["job_id"] == a["id"]

    def test_swap_many_of_one_revision_twice_lets_only_the_first_win(
        self, installed: JobStore
    ) -> None:
        from cron import executions

        store = installed
        job = make_job()
        rev = store.insert(job).rev
        first, second = self._row(job["id"]), self._row(job["id"])
        out = store.swap_many(
            [
                Swap(job["id"], rev, _renamed(job, "first"), (first,)),
                Swap(job["id"], rev, _renamed(job, "second"), (second,)),
            ]
        )
        assert [o is not None for o in out] == [True, False]
        got = store.get(job["id"])
        assert got is not None and got.job["name"] == "first"
        assert [r["id"] for r in executions.list_executions(job["id"])] == [first.id]

    def test_swap_many_a_job_at_a_stale_then_at_its_current_revision(
        self, installed: JobStore
    ) -> None:
        # Each item is its own compare-and-set, in order: naming one job twice, the item
        # at the stale revision loses and the one at the current revision wins.
        from cron import executions

        store = installed
        job = make_job(name="v1")
        stale = store.insert(job).rev
        current = store.swap(job["id"], stale, _renamed(job, "v2"))
        assert current is not None
        late, fresh = self._row(job["id"]), self._row(job["id"])
        out = store.swap_many(
            [
                Swap(job["id"], stale, _renamed(job, "from the stale read"), (late,)),
                Swap(job["id"], current.rev, _renamed(job, "from the current read"), (fresh,)),
            ]
        )
        assert [o is not None for o in out] == [False, True]
        got = store.get(job["id"])
        assert got is not None and got.job["name"] == "from the current read"
        assert out[1] is not None and (out[1].job, out[1].rev) == (got.job, got.rev)
        assert [r["id"] for r in executions.list_executions(job["id"])] == [fresh.id]

    def test_swap_many_an_item_at_a_revision_never_handed_out_loses_alone(
        self, store: JobStore
    ) -> None:
        a, b = make_job(name="a"), make_job(name="b")
        rev_a, rev_b = store.insert(a).rev, store.insert(b).rev
        out = store.swap_many(
            [
                Swap(a["id"], "no such revision", _renamed(a, "a2")),
                Swap(b["id"], rev_b, _renamed(b, "b2")),
            ]
        )
        assert [o is not None for o in out] == [False, True], "the later item must still apply"
        got_a, got_b = store.get(a["id"]), store.get(b["id"])
        assert got_a is not None and (got_a.job, got_a.rev) == (a, rev_a)
        assert got_b is not None and got_b.job["name"] == "b2"

    def test_swap_many_at_none_is_no_revision_either(self, store: JobStore) -> None:
        # As swap(): a batch item is never unconditional.
        job = make_job(name="v1")
        rev = store.insert(job).rev
        assert store.swap_many([Swap(job["id"], None, _renamed(job, "v2"))]) == [None]
        got = store.get(job["id"])
        assert got is not None and (got.job, got.rev) == (job, rev)

    def test_swap_many_of_nothing_writes_nothing(self, store: JobStore) -> None:
        store.insert(make_job())
        before = store.version()
        assert store.swap_many([]) == []
        assert store.version() == before

    def test_insert_many_adds_every_job_in_order(self, store: JobStore) -> None:
        made = [make_job(name=f"bulk {i}") for i in range(5)]
        out = store.insert_many(made)
        assert [s.job for s in out] == made
        assert [s.job for s in store.scan()] == made

    def test_insert_many_keeps_the_jobs_before_a_duplicate_and_stops_there(
        self, store: JobStore
    ) -> None:
        # JobStore.insert_many: ":meth:`insert` for each job; if any insert fails, those
        # before it are kept" — and, like the loop it stands for, none after it is tried.
        taken = make_job(name="already there")
        store.insert(taken)
        before = [make_job(name=f"before {i}") for i in range(2)]
        after = make_job(name="after")
        with pytest.raises(DuplicateJobError) as raised:
            store.insert_many([*before, dict(taken, name="again"), after])
        assert (raised.value.field, raised.value.value) == ("id", taken["id"])
        assert [s.job for s in store.scan()] == [taken, *before]
        assert store.get(after["id"]) is None

    def test_insert_many_returns_the_revisions_it_stored(self, store: JobStore) -> None:
        made = [make_job(name=f"bulk {i}") for i in range(3)]
        out = store.insert_many(made)
        for job, inserted in zip(made, out, strict=True):
            got = store.get(job["id"])
            assert got is not None and got.rev == inserted.rev
            # ... so a swap at the returned revision wins.
            assert store.swap(job["id"], inserted.rev, _renamed(job, "swapped")) is not None

    # -- version / count / find_key ----------------------------------------------------

    def test_version_changes_after_every_write(self, store: JobStore) -> None:
        if store.version() is None:
            # None means "unknown" (the seam allows it; the ticker then polls): no rule to check.
            pytest.skip(f"{type(store).__name__}.version() is None")
        job = make_job()
        v0 = store.version()
        rev = store.insert(job).rev
        v1 = store.version()
        assert v1 != v0, "insert"
        won = store.swap(job["id"], rev, _renamed(job, "renamed"))
        assert won is not None
        v2 = store.version()
        assert v2 not in (v0, v1), "swap"
        assert store.version() == v2, "a read alone changed the version"
        assert store.delete(job["id"]) is True
        assert store.version() not in (v0, v1, v2), "delete"

    def test_ledger_writes_leave_the_version_alone(self, store: JobStore) -> None:
        # Tickers sharing a store wake on a version change; if a heartbeat row or a
        # run's ledger row moved it, every beat would wake every other node, forever.
        if store.version() is None:
            pytest.skip(f"{type(store).__name__}.version() is None")
        from cron.registry import Registration

        job = make_job()
        store.insert(job)
        before = store.version()
        store.write_rows([self._row(job["id"])])
        Registration(store, provider="builtin").beat(ok=True)
        assert store.version() == before

    def test_count(self, store: JobStore) -> None:
        assert store.count() == 0
        made = [make_job() for _ in range(3)]
        for job in made:
            store.insert(job)
        assert store.count() == 3
        store.delete(made[1]["id"])
        assert store.count() == 2

    def test_find_key(self, store: JobStore) -> None:
        keyed = make_job(key="weekly-digest")
        store.insert(make_job())
        store.insert(keyed)
        found = store.find_key("weekly-digest")
        assert found is not None and found.job == keyed
        assert store.find_key("no-such-key") is None
        store.delete(keyed["id"])
        assert store.find_key("weekly-digest") is None

    def test_info_names_the_store(self, store: JobStore) -> None:
        store.insert(make_job())
        info = store.info()
        assert info["jobs"] == 1
        assert isinstance(info["backend"], str) and info["backend"]
        assert info["url"] == store.url
