"""``StoreContract``: the tests every :class:`cron.stores.JobStore` must pass (SPEC §10).

Subclass it and provide a ``store`` fixture (zarr's ``StoreTests`` idiom)::

    import pytest
    from cron.testing.store import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self, home):
            s = MyStore("mystore://...")
            yield s
            s.close()

``home`` is defined here: it points ``CRONKIT_HOME`` (and ``TZ=UTC``) at a
fresh temporary directory, so a store that keeps anything under the home (the
JSON store's ``jobs.json``, the ledger) starts empty in every test. The
process tests open the store again, in child processes, by
:meth:`StoreContract.store_url`; override it when ``store.url`` alone does not
name the same store in a fresh process.

Each test pins one rule of the seam (:class:`cron.stores.JobStore`'s
docstrings) or of the claim built on it (:mod:`cron.jobs`, SPEC §3), with real
threads and real ``spawn`` processes. Nothing is mocked.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cron.claim import Job, wake_time
from cron.errors import DuplicateJobError
from cron.ledger_sql import LedgerRow
from cron.stores import JobStore, Stored, Swap, open_store

__all__ = ["StoreContract", "make_job"]

THREADS = 8
PROCESSES = 4
JOIN_TIMEOUT = 60.0

# A fixed instant well in the future of any real clock skew: store-level tests
# never consult the clock, only wake times relative to this.
T0 = datetime(2031, 1, 6, 12, 0, tzinfo=UTC)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def _new_id() -> str:
    return uuid.uuid4().hex[:12]


def make_job(
    job_id: str | None = None,
    *,
    next_run_at: datetime | None = T0,
    name: str = "contract job",
    enabled: bool = True,
    state: str = "scheduled",
    key: str | None = None,
    claim_at: datetime | None = None,
    times: int | None = None,
    completed: int = 0,
) -> Job:
    """A job shaped as ``cron.jobs.create_job`` makes one (SPEC §3), every field chosen here."""
    job: Job = {
        "id": job_id or _new_id(),
        "name": name,
        "schedule": {"kind": "interval", "seconds": 3600, "display": "every 1h"},
        "action": {"kind": "command", "command": "true"},
        "repeat": {"times": times, "completed": completed},
        "enabled": enabled,
        "state": state,
        "paused_at": None if enabled else _iso(T0),
        "paused_reason": None,
        "created_at": _iso(T0 - timedelta(days=1)),
        "next_run_at": _iso(next_run_at) if next_run_at is not None else None,
        "last_run_at": None,
        "last_scheduled_at": None,
        "last_status": None,
        "last_error": None,
        "failure_streak": 0,
        "fire_claim": None,
    }
    if claim_at is not None:
        job["fire_claim"] = {"token": uuid.uuid4().hex, "at": _iso(claim_at),
                             "by": "contract:1:1", "scheduled_at": _iso(claim_at)}
    if key is not None:
        job["key"] = key
    return job


def _renamed(job: Job, name: str) -> Job:
    out = dict(job)
    out["name"] = name
    return out


def _race_in_process(url: str, job_id: str, name: str, barrier: Any, results: Any) -> None:
    """One racer in a fresh process: open the store by URL, read, wait, swap, report."""
    store = open_store(url)
    try:
        stored = store.get(job_id)
        assert stored is not None, f"{url}: job {job_id} not visible from another process"
        barrier.wait(JOIN_TIMEOUT)
        won = store.swap(job_id, stored.rev, _renamed(stored.job, name))
        results.put((name, won is not None))
    except BaseException as exc:
        barrier.abort()  # the other racers must not wait out the timeout for this one
        results.put((name, f"error: {exc!r}"))
        raise
    finally:
        store.close()


def _run_threads(n: int, body: Callable[[int], object]) -> list[object]:
    """Run ``body(i)`` in ``n`` threads released together by a barrier; results by index."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(JOIN_TIMEOUT)
            results[i] = body(i)
        except BaseException as exc:  # reported by the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a racing thread hung"
    assert not errors, errors[0]
    return results


class StoreContract:
    """Tests any job store must pass. Provide a ``store`` fixture (it may use ``home``)."""

    # -- fixtures and hooks -------------------------------------------------------------

    @pytest.fixture
    def home(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """A private, empty ``CRONKIT_HOME`` (inherited by the process tests' children)."""
        h = tmp_path / "cronkit-home"
        h.mkdir(mode=0o700)
        monkeypatch.setenv("CRONKIT_HOME", str(h))
        monkeypatch.setenv("TZ", "UTC")
        return h

    @pytest.fixture
    def store(self) -> JobStore:
        raise NotImplementedError("a StoreContract subclass must define the store fixture")

    @pytest.fixture
    def installed(self, store: JobStore) -> Iterator[JobStore]:
        """``store`` as the process-wide store, for the ledger and the ``cron.jobs`` API."""
        from cron.store import set_store

        set_store(store)
        try:
            yield store
        finally:
            set_store(None)

    def store_url(self, store: JobStore) -> str:
        """The URL a fresh process passes to ``cron.stores.open_store`` to reach ``store``."""
        return store.url

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

    # -- scan --------------------------------------------------------------------------

    def test_scan_lists_jobs_in_creation_order(self, store: JobStore) -> None:
        # Ids deliberately out of lexical order, next runs out of creation order.
        made = [make_job("c" * 12, next_run_at=T0 + timedelta(hours=2)),
                make_job("a" * 12, next_run_at=T0),
                make_job("b" * 12, next_run_at=T0 + timedelta(hours=1))]
        revs = [store.insert(j).rev for j in made]
        # Rewriting a job does not move it.
        assert store.swap(made[0]["id"], revs[0], _renamed(made[0], "moved?")) is not None
        assert [s.job["id"] for s in store.scan()] == ["c" * 12, "a" * 12, "b" * 12]
        assert [s.job["id"] for s in store.scan(limit=2)] == ["c" * 12, "a" * 12]

    def _seed_wake_times(self, store: JobStore) -> list[Job]:
        """Active jobs due at various times, inactive ones, and a spent job holding a claim."""
        ttl = store.claim_ttl
        made = [
            make_job(next_run_at=T0 + timedelta(minutes=30), name="due later"),
            make_job(next_run_at=T0 - timedelta(minutes=5), name="due"),
            make_job(next_run_at=T0 + timedelta(days=1), name="tomorrow"),
            make_job(next_run_at=None, enabled=False, state="paused", name="paused"),
            make_job(next_run_at=None, state="completed", times=1, completed=1, name="done"),
            make_job(next_run_at=T0 - timedelta(hours=1), enabled=False, state="paused",
                     name="paused, stale next run"),
            # Spent, its final run's claim still held: wakes when that claim goes stale.
            make_job(next_run_at=None, times=1, completed=1, name="spent, claimed",
                     claim_at=T0 - timedelta(seconds=ttl + 600)),
            make_job(next_run_at=T0, name="due exactly now"),
        ]
        for job in made:
            store.insert(job)
        return made

    def test_scan_due_by_returns_every_due_job_ordered_by_wake_time(
        self, store: JobStore
    ) -> None:
        made = self._seed_wake_times(store)
        ttl = store.claim_ttl
        for due_by in (T0 - timedelta(days=2), T0 - timedelta(minutes=5), T0,
                       T0 + timedelta(hours=1), T0 + timedelta(days=3)):
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

    def test_next_wake_ignores_inactive_jobs(self, store: JobStore) -> None:
        store.insert(make_job(next_run_at=None, enabled=False, state="paused"))
        store.insert(make_job(next_run_at=None, state="completed", times=1, completed=1))
        assert store.next_wake() is None
        assert store.scan(due_by=T0 + timedelta(days=365)) == []

    # -- swap_many -----------------------------------------------------------------------

    def _row(self, job_id: str) -> LedgerRow:
        return LedgerRow(uuid.uuid4().hex, job_id, "claimed", _iso(T0), _iso(T0), "contract",
                         "contract:1:1", "contract job")

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
        out = store.swap_many([
            Swap(a["id"], rev_a, _renamed(a, "a2"), (rows[a["id"]],)),
            Swap(b["id"], stale_b, _renamed(b, "b2"), (rows[b["id"]],)),
            Swap(c["id"], rev_c, _renamed(c, "c2"), (rows[c["id"]],)),
        ])
        assert [o is not None for o in out] == [True, False, True]
        names = {s.job["id"]: s.job["name"] for s in store.scan()}
        assert names == {a["id"]: "a2", b["id"]: "b moved on", c["id"]: "c2"}
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
        out = store.swap_many([Swap(job["id"], rev, _renamed(job, "first"), (first,)),
                               Swap(job["id"], rev, _renamed(job, "second"), (second,))])
        assert [o is not None for o in out] == [True, False]
        got = store.get(job["id"])
        assert got is not None and got.job["name"] == "first"
        assert [r["id"] for r in executions.list_executions(job["id"])] == [first.id]

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

    # -- N racing swaps of one revision: exactly one winner ---------------------------------

    def test_threads_racing_to_swap_one_revision_have_exactly_one_winner(
        self, store: JobStore
    ) -> None:
        job = make_job()
        rev = store.insert(job).rev

        def race(i: int) -> Stored | None:
            return store.swap(job["id"], rev, _renamed(job, f"thread {i}"))

        results = _run_threads(THREADS, race)
        winners = [i for i, r in enumerate(results) if r is not None]
        assert len(winners) == 1, f"{len(winners)} of {THREADS} threads won one revision"
        got = store.get(job["id"])
        assert got is not None and got.job["name"] == f"thread {winners[0]}"

    def test_processes_racing_to_swap_one_revision_have_exactly_one_winner(
        self, store: JobStore
    ) -> None:
        job = make_job()
        store.insert(job)
        url = self.store_url(store)
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(PROCESSES)
        results = ctx.Queue()
        procs = [
            ctx.Process(target=_race_in_process,
                        args=(url, job["id"], f"process {i}", barrier, results))
            for i in range(PROCESSES)
        ]
        for p in procs:
            p.start()
        outcomes: list[tuple[str, object]] = []
        try:
            for _ in procs:
                outcomes.append(results.get(timeout=JOIN_TIMEOUT))
        except queue.Empty:
            pass
        for p in procs:
            p.join(JOIN_TIMEOUT)
            if p.is_alive():
                p.kill()
                p.join()
        assert [p.exitcode for p in procs] == [0] * PROCESSES, outcomes
        assert all(isinstance(won, bool) for _, won in outcomes), outcomes
        winners = [name for name, won in outcomes if won is True]
        assert len(outcomes) == PROCESSES and len(winners) == 1, outcomes
        got = store.get(job["id"])
        assert got is not None and got.job["name"] == winners[0]

    # -- the claim built on the seam (cron.jobs, SPEC §3) ----------------------------------

    def _due_job(self) -> Job:
        from cron import jobs

        # Hourly, created an hour and 5 s ago: its first slot came due 5 s ago.
        return jobs.create_job("every 1h", "true", name="contract claim",
                               now=datetime.now(UTC) - timedelta(seconds=3605))

    def test_threads_claiming_one_due_job_get_exactly_one_token(
        self, installed: JobStore
    ) -> None:
        from cron import executions, jobs

        job = self._due_job()
        tokens = _run_threads(THREADS, lambda _i: jobs.claim_job_for_fire(job["id"]))
        won = [t for t in tokens if t is not None]
        assert len(won) == 1, f"{len(won)} of {THREADS} claims won one slot"
        rows = executions.list_executions(job["id"], limit=None)
        assert [(r["id"], r["status"]) for r in rows] == [(won[0], "claimed")]
        stored = installed.get(job["id"])
        assert stored is not None
        assert stored.job["fire_claim"]["token"] == won[0]
        assert stored.job["repeat"]["completed"] == 1

    def test_a_lost_claim_changes_nothing(self, installed: JobStore) -> None:
        from cron import executions, jobs

        job = self._due_job()
        assert jobs.claim_job_for_fire(job["id"]) is not None
        before = installed.get(job["id"])
        assert before is not None
        assert jobs.claim_job_for_fire(job["id"]) is None, "the live claim must hold"
        assert jobs.claim_job_for_fire(job["id"], scheduled_at=job["next_run_at"]) is None
        after = installed.get(job["id"])
        assert after is not None
        assert (after.job, after.rev) == (before.job, before.rev)
        assert len(executions.list_executions(job["id"], limit=None)) == 1

    def test_mark_job_run_with_a_wrong_token_changes_nothing(
        self, installed: JobStore
    ) -> None:
        from cron import jobs

        job = self._due_job()
        token = jobs.claim_job_for_fire(job["id"])
        assert token is not None
        before = installed.get(job["id"])
        assert before is not None
        assert jobs.mark_job_run(job["id"], "f" * 32, success=True) is False
        after = installed.get(job["id"])
        assert after is not None
        assert (after.job, after.rev) == (before.job, before.rev)
        assert jobs.mark_job_run(job["id"], token, success=True) is True
        done = installed.get(job["id"])
        assert done is not None
        assert done.job["fire_claim"] is None and done.job["last_status"] == "ok"
