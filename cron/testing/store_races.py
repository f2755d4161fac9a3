"""The store contract under concurrency: N threads or ``spawn`` processes racing for one
revision, ``insert_many`` racing another writer, and the claim built on the seam
(:mod:`cron.jobs`, SPEC §3).

A mixin of :class:`cron.testing.store.StoreContract`, which supplies the
``store`` and ``installed`` fixtures; subclass ``StoreContract``, not this.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cron.claim import Job
from cron.errors import DuplicateJobError
from cron.stores import JobStore, Stored
from cron.testing.store_support import (
    JOIN_TIMEOUT,
    PROCESSES,
    THREADS,
    _race_in_process,
    _renamed,
    _run_threads,
    make_job,
)

RACING_INSERTS = 100
"""``insert_many`` calls racing the other writer. Enough for the rare interleaving: the
PostgreSQL store's (its batch statement meets the other writer's row, its row-by-row retry
no longer does) came within the first 25 calls in each of 20 trials."""


class RaceContract:
    """Exactly one winner: racing swaps of one revision, racing claims of one slot."""

    if TYPE_CHECKING:
        # Provided by StoreContract (a subclass may override it).
        def store_url(self, store: JobStore) -> str: ...

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
            ctx.Process(
                target=_race_in_process, args=(url, job["id"], f"process {i}", barrier, results)
            )
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

    # -- insert_many against a racing writer -----------------------------------------------

    def test_insert_many_racing_a_writer_of_the_same_id_inserts_or_raises_a_duplicate(
        self, store: JobStore
    ) -> None:
        # Another writer inserts and deletes the same job over and over. Each insert_many
        # either stores the job (and returns it, at its revision) or finds it taken
        # (DuplicateJobError) - never a hole in its result, never another error, whenever
        # the other writer's row comes or goes.
        job = make_job()
        stop = threading.Event()
        errors: list[BaseException] = []

        def churn() -> None:
            try:
                while not stop.is_set():
                    with contextlib.suppress(DuplicateJobError):
                        store.insert(job)
                    store.delete(job["id"])
            except BaseException as exc:  # reported below, by the test's thread
                errors.append(exc)

        other = threading.Thread(target=churn)
        other.start()
        try:
            for _ in range(RACING_INSERTS):
                try:
                    out = store.insert_many([job])
                except DuplicateJobError as exc:
                    assert (exc.field, exc.value) == ("id", job["id"])
                    continue
                assert len(out) == 1 and isinstance(out[0], Stored), out
                assert out[0].job == job and out[0].rev is not None
        finally:
            stop.set()
            other.join(JOIN_TIMEOUT)
        assert not other.is_alive(), "the racing writer hung"
        assert not errors, errors[0]

    # -- the claim built on the seam (cron.jobs, SPEC §3) ----------------------------------

    def _due_job(self) -> Job:
        from cron import jobs

        # Hourly, created an hour and 5 s ago: its first slot came due 5 s ago.
        return jobs.create_job(
            "every 1h",
            "true",
            name="contract claim",
            now=datetime.now(UTC) - timedelta(seconds=3605),
        )

    def test_threads_claiming_one_due_job_get_exactly_one_token(self, installed: JobStore) -> None:
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

    def test_mark_job_run_with_a_wrong_token_changes_nothing(self, installed: JobStore) -> None:
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
