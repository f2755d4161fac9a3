"""The store contract on scans: ``scan``, ``scan(due_by=...)`` and ``next_wake`` (SPEC §10).

A mixin of :class:`cron.testing.store.StoreContract`, which supplies the
``store`` and ``installed`` fixtures; subclass ``StoreContract``, not this.
"""

from __future__ import annotations

from datetime import timedelta

from cron.claim import Job, wake_time
from cron.stores import JobStore
from cron.testing.store_support import T0, _iso, _renamed, make_job


class ScanContract:
    """Listing jobs: creation order, the due index by wake time, ``next_wake``."""

    # -- scan --------------------------------------------------------------------------

    def test_scan_lists_jobs_in_creation_order(self, store: JobStore) -> None:
        # Ids deliberately out of lexical order, next runs out of creation order.
        made = [
            make_job("c" * 12, next_run_at=T0 + timedelta(hours=2)),
            make_job("a" * 12, next_run_at=T0),
            make_job("b" * 12, next_run_at=T0 + timedelta(hours=1)),
        ]
        revs = [store.insert(j).rev for j in made]
        # Rewriting a job does not move it.
        assert store.swap(made[0]["id"], revs[0], _renamed(made[0], "moved?")) is not None
        assert [s.job["id"] for s in store.scan()] == ["c" * 12, "a" * 12, "b" * 12]
        assert [s.job["id"] for s in store.scan(limit=2)] == ["c" * 12, "a" * 12]

    def _seed_wake_times(self, store: JobStore, *, bulk: bool = False) -> list[Job]:
        """Active jobs due at various times, inactive ones, and a spent job holding a claim
        (inserted one by one, or with one ``insert_many`` if ``bulk``)."""
        ttl = store.claim_ttl
        made = [
            make_job(next_run_at=T0 + timedelta(minutes=30), name="due later"),
            make_job(next_run_at=T0 - timedelta(minutes=5), name="due"),
            make_job(next_run_at=T0 + timedelta(days=1), name="tomorrow"),
            make_job(next_run_at=None, enabled=False, state="paused", name="paused"),
            make_job(next_run_at=None, state="completed", times=1, completed=1, name="done"),
            make_job(
                next_run_at=T0 - timedelta(hours=1),
                enabled=False,
                state="paused",
                name="paused, stale next run",
            ),
            # Spent, its final run's claim still held: wakes when that claim goes stale.
            make_job(
                next_run_at=None,
                times=1,
                completed=1,
                name="spent, claimed",
                claim_at=T0 - timedelta(seconds=ttl + 600),
            ),
            make_job(next_run_at=T0, name="due exactly now"),
        ]
        if bulk:
            store.insert_many(made)
        else:
            for job in made:
                store.insert(job)
        return made

    def test_scan_due_by_returns_every_due_job_ordered_by_wake_time(self, store: JobStore) -> None:
        made = self._seed_wake_times(store)
        ttl = store.claim_ttl
        for due_by in (
            T0 - timedelta(days=2),
            T0 - timedelta(minutes=5),
            T0,
            T0 + timedelta(hours=1),
            T0 + timedelta(days=3),
        ):
            due = {j["id"] for j in made if (w := wake_time(j, ttl)) is not None and w <= due_by}
            got = store.scan(due_by=due_by)
            ids = [s.job["id"] for s in got]
            assert due <= set(ids), f"due_by={due_by}: due jobs missing: {due - set(ids)}"
            assert len(ids) == len(set(ids)), "a job listed twice"
            wakes = [wake_time(s.job, ttl) for s in got]
            assert None not in wakes, "scan(due_by=) listed a job no tick needs to see"
            assert wakes == sorted(w for w in wakes if w is not None), "not in wake-time order"

    def test_scan_due_by_honours_limit(self, store: JobStore) -> None:
        self._seed_wake_times(store)
        horizon = T0 + timedelta(days=3)
        everything = [s.job["id"] for s in store.scan(due_by=horizon)]
        assert len(everything) >= 5
        assert [s.job["id"] for s in store.scan(due_by=horizon, limit=2)] == everything[:2]
        assert store.scan(due_by=horizon, limit=0) == []

    def test_scan_due_by_follows_swaps(self, store: JobStore) -> None:
        job = make_job(next_run_at=T0 - timedelta(minutes=1))
        rev = store.insert(job).rev
        assert [s.job["id"] for s in store.scan(due_by=T0)] == [job["id"]]
        later = dict(job, next_run_at=_iso(T0 + timedelta(hours=1)))
        assert store.swap(job["id"], rev, later) is not None
        assert job["id"] not in {s.job["id"] for s in store.scan(due_by=T0)}
        assert store.next_wake() == T0 + timedelta(hours=1)

    def test_next_wake_is_the_earliest_wake_time(self, store: JobStore) -> None:
        assert store.next_wake() is None, "an empty store has no wake time"
        made = self._seed_wake_times(store)
        ttl = store.claim_ttl
        wakes = [w for j in made if (w := wake_time(j, ttl)) is not None]
        assert store.next_wake() == min(wakes)
        # The spent job's stale claim is the earliest here: it is what the tick must see.
        spent = next(j for j in made if j["name"] == "spent, claimed")
        assert min(wakes) == wake_time(spent, ttl)

    def test_insert_many_indexes_wake_times_as_insert_does(self, store: JobStore) -> None:
        made = self._seed_wake_times(store, bulk=True)
        ttl = store.claim_ttl
        wakes = {j["id"]: w for j in made if (w := wake_time(j, ttl)) is not None}
        # The spent job's stale claim (claim time + claim_ttl) is the earliest.
        assert store.next_wake() == min(wakes.values())
        for due_by in sorted(set(wakes.values())):
            ids = {s.job["id"] for s in store.scan(due_by=due_by)}
            due = {job_id for job_id, w in wakes.items() if w <= due_by}
            assert due <= ids, f"due_by={due_by}: due jobs missing: {due - ids}"
            assert ids <= set(wakes), "scan(due_by=) listed a job no tick needs to see"

    def test_next_wake_ignores_inactive_jobs(self, store: JobStore) -> None:
        store.insert(make_job(next_run_at=None, enabled=False, state="paused"))
        store.insert(make_job(next_run_at=None, state="completed", times=1, completed=1))
        assert store.next_wake() is None
        assert store.scan(due_by=T0 + timedelta(days=365)) == []
