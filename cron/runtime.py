"""The runtime: the state that runs a process's jobs, as one object its owner holds.

A :class:`Runtime` owns the worker pool (``cron.max_parallel_jobs``), the
claim keeper (batched refreshes and self-fencing, :mod:`cron.claim_keeper`),
the live runs (:mod:`cron.live_runs`), the in-flight futures, the completer
that records pool runs in batches (:mod:`cron.completer`), the retries in
their backoff and the runaway runs still being watched. Whoever starts jobs
owns one: the ticker (``InProcessCronScheduler(runtime=...)``), the gateway, a
host, ``cronkit run``. Modules hold nothing but constants.

**The default runtime.** The SPEC's module functions (``cron.scheduler.tick``,
``run_one_job``, ``dispatch``, ``running_jobs``, ``wait_for_running``,
``interrupt_running``, ...) act on :func:`default_runtime`: one per process,
created on first use, never bound to a home or store (it follows
``$CRONKIT_HOME`` / ``$CRONKIT_STORE`` / :func:`cron.store.set_store` as
before). An owner given no runtime uses it too, so the gateway, its ticker,
its webhook and ``cron.scheduler.wait_for_running`` see the same runs. Why not
"the runtime of the running ticker": a process may run jobs with no ticker
(``cronkit run``, a host calling ``tick`` from its own loop), and a function
whose target changes as tickers start and stop would make ``running_jobs()``
lie about runs started before.

**Isolated runtimes.** ``Runtime(home=..., store=...)`` runs everything it
does — the caller's call and each of its threads — bound to that home
(:func:`cron.paths.bound_home`) and store (:func:`cron.store.bound_store`),
so two runtimes on two homes or stores share a process without sharing a job,
a worker, a claim or a shutdown. :meth:`Runtime.close` ends one; the other
runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from datetime import datetime
from pathlib import Path
from typing import Any

from cron import jobs, paths, procgroup
from cron import retry as retries
from cron.call_threads import CallThreads
from cron.claim_keeper import ClaimKeeper
from cron.completer import Completer, StartQueue
from cron.config import cfg_get, read_config
from cron.live_runs import LiveRun, LiveRuns, Ran
from cron.retry_path import Retry, wait_for_retry
from cron.run_path import (
    Adapters,
    finish_fenced,
    finish_runs,
    settle_straggler,
    start_and_run,
)
from cron.store import Job, JobStore, Stored, bound_store, get_store

log = logging.getLogger(__name__)

Loop = asyncio.AbstractEventLoop | None
_Parked = tuple[Ran, "Adapters | None", Loop, "Future[bool]"]

STRAGGLER_POLL = 0.1
"""Seconds between checks of the runaway runs being watched."""

PREFETCH_MAX_AGE = 1.0
"""Default of :attr:`Runtime.prefetch_max_age`."""


@contextlib.contextmanager
def _tick_lock() -> Iterator[bool]:
    """``<home>/cron/.tick.lock``, without blocking. Yields False on contention.

    Any other OSError (permissions, a missing mount, a full disk) propagates:
    a tick that could not even try must not look like a clean one.
    """
    try:
        fd = os.open(paths.tick_lock_path(), os.O_RDWR | os.O_CREAT, paths.FILE_MODE)
    except FileNotFoundError:  # a first tick: the directories are made 0700 only then
        paths.cron_dir(create=True)
        fd = os.open(paths.tick_lock_path(), os.O_RDWR | os.O_CREAT, paths.FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                yield False
                return
            raise
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class Runtime:
    """Pool, claim keeper, live runs, in-flight runs, retries and stragglers of one owner.

    ``home`` / ``store``: bind everything this runtime does to them (default:
    whatever the process resolves, see the module docstring). Threads are
    started on first use; :meth:`close` ends the runs and stops the pool.
    """

    def __init__(
        self, *, home: str | os.PathLike[str] | None = None, store: JobStore | None = None
    ) -> None:
        self.home = Path(home) if home is not None else None
        self.store = store
        self.live = LiveRuns()
        self.calls = CallThreads()
        """Threads the python runner calls targets on, reused between runs."""
        self.keeper = ClaimKeeper(on_fence=self._fence, spawn=self.spawn)
        self.timing = retries.RetryTiming()
        """The clock and random source retries wait on (a test's ``FakeClock``)."""
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0
        self._pool_lock = threading.Lock()
        self._inflight: set[Future[bool]] = set()
        self._inflight_lock = threading.Lock()
        self._parked_cond = threading.Condition()
        self._parked: list[_Parked] = []
        self._watcher: threading.Thread | None = None
        self._starts = StartQueue()
        self._prefetched: tuple[datetime, float, list[Stored]] | None = None
        self.prefetch_max_age = PREFETCH_MAX_AGE
        """Seconds a :meth:`prefetch_due` read stays usable by the next tick."""
        self._completer = Completer(
            lambda runs, adapters, loop: finish_runs(runs, self.live, self.timing, adapters, loop),
            self._schedule_retry,
            self._starts,
            self.spawn,
        )

    # -- binding -----------------------------------------------------------------------

    @contextlib.contextmanager
    def bound(self) -> Iterator[None]:
        """Run the block in this runtime's home and store (no-op for an unbound runtime)."""
        with contextlib.ExitStack() as stack:
            if self.home is not None:
                stack.enter_context(paths.bound_home(self.home))
            if self.store is not None:
                stack.enter_context(bound_store(self.store))
            yield

    def spawn(self, fn: Callable[[], None], name: str) -> threading.Thread:
        """Run ``fn`` on a new daemon thread bound to this runtime."""

        def run() -> None:
            with self.bound():
                fn()

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        return thread

    def _bound_call(self, fn: Callable[..., None], *args: Any) -> None:
        # Bound per task, not per worker: a binding is entered and left on one thread.
        if self.home is None and self.store is None:
            fn(*args)
            return
        with self.bound():
            fn(*args)

    # -- the pool and what is in flight ------------------------------------------------

    def _executor(self, size: int) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None or self._pool_size != size:
                old = self._pool
                self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="cronkit-job")
                self._pool_size = size
                if old is not None:
                    old.shutdown(wait=False)
            return self._pool

    def running_jobs(self) -> int:
        """How many dispatched jobs have not finished yet."""
        with self._inflight_lock:
            return sum(1 for f in self._inflight if not f.done())

    def wait_for_running(self, timeout: float | None) -> bool:
        """Wait for the dispatched jobs; True if all finished in time."""
        with self._inflight_lock:
            pending = [f for f in self._inflight if not f.done()]
        if not pending:
            return True
        _done, not_done = wait_futures(pending, timeout=timeout)
        return not not_done

    def wait_for_starts(self, timeout: float) -> None:
        """Wait until every dispatched job has started (or ``timeout``).

        The built-in ticker calls it after a tick that dispatched jobs, before its
        own bookkeeping (heartbeat files, the next wake-up's store reads), so that
        work does not compete with the starts.
        """
        self._starts.settled(timeout)

    def _log_done(self, fut: Future[bool]) -> None:
        with self._inflight_lock:
            self._inflight.discard(fut)
        exc = fut.exception()
        if exc is not None:
            log.error("cron job raised out of run_one_job", exc_info=exc)

    # -- tick and dispatch -------------------------------------------------------------

    def tick(
        self,
        *,
        now: datetime | None = None,
        sync: bool = True,
        verbose: bool = False,
        adapters: Adapters | None = None,
        loop: Loop = None,
        can_dispatch: Callable[[], bool] | None = None,
    ) -> int:
        """``cron.scheduler.tick`` on this runtime (its contract is there)."""
        with self.bound():
            with _tick_lock() as got:
                if not got:
                    return 0
                if can_dispatch is not None and not can_dispatch():
                    return 0
                since = time.monotonic()  # the claims are dated after this (fencing)
                claimed = jobs.claim_due_jobs(now, prefetched=self._take_prefetched())
            if not claimed:
                return 0
            futures = self.dispatch(
                [job for job, _token in claimed],
                adapters=adapters,
                loop=loop,
                verbose=verbose,
                claimed_since=since,
            )
        if sync:
            wait_futures(futures)
        return len(claimed)

    def prefetch_due(self, by: datetime) -> int:
        """Read the jobs due by ``by`` now, for the first tick at or after ``by``.

        The built-in ticker calls it just before it wakes for a slot, so that
        tick starts with the claim's write instead of two reads (and finds the
        store's connection and pages warm). At most once per read, and only by a
        tick at or after ``by`` within :attr:`prefetch_max_age`: an earlier tick
        (woken by a change) reads afresh. Returns how many jobs were read.
        """
        with self.bound():
            rows = get_store().scan(due_by=by)
        self._prefetched = (by, time.monotonic(), rows)
        return len(rows)

    def _take_prefetched(self) -> tuple[datetime, list[Stored]] | None:
        got, self._prefetched = self._prefetched, None
        if got is None or time.monotonic() - got[1] > self.prefetch_max_age:
            return None
        return got[0], got[2]

    def dispatch(
        self,
        claimed: list[Job],
        *,
        adapters: Adapters | None = None,
        loop: Loop = None,
        verbose: bool = False,
        claimed_since: float | None = None,
    ) -> list[Future[bool]]:
        """``cron.scheduler.dispatch`` on this runtime (its contract is there)."""
        with self.bound():
            cfg = read_config()
        size = int(cfg_get(cfg, "cron", "max_parallel_jobs", default=4))
        ttl = float(cfg_get(cfg, "cron", "claim_ttl", default=300))
        pool = self._executor(size)
        tokens: list[tuple[str, str]] = []
        for job in claimed:
            token = (job.get("fire_claim") or {}).get("token")
            if not token:
                raise ValueError(f"job {job.get('id')!r} carries no claim token; claim it first")
            tokens.append((job["id"], token))
        # Held from now, not from the start: a job queued behind a burst keeps its claim.
        self.keeper.add_many(tokens, ttl, since=claimed_since)
        # Each future completes when its run's bookkeeping is written, not when the
        # worker is free: wait_for_running covers the whole run.
        futures: list[Future[bool]] = [Future() for _ in claimed]
        for fut in futures:
            fut.add_done_callback(self._log_done)
        with self._inflight_lock:
            self._inflight.update(futures)
        self._starts.add(len(claimed))
        for i, (job, fut) in enumerate(zip(claimed, futures, strict=True)):
            try:
                pool.submit(self._bound_call, self._run_queued, job, adapters, loop, fut)
            except BaseException:
                # Not submitted: this job and the ones after it never run here.
                self._starts.add(-(len(claimed) - i))
                for _job_id, token in tokens[i:]:
                    self.keeper.release(token)
                with self._inflight_lock:
                    self._inflight.difference_update(futures[i:])
                raise
        return futures

    def _run_queued(
        self, job: Job, adapters: Adapters | None, loop: Loop, done: Future[bool]
    ) -> None:
        """One dispatched job on a pool worker: start and run it, then hand it to the
        completer (a fenced run is recorded here: it waits for the store)."""
        token = job["fire_claim"]["token"]
        # Waiting until here, not until a worker took the run: the completer's batch and
        # the ticker's bookkeeping then leave a burst's last starts alone.
        pending = [True]

        def started() -> None:
            if pending:
                pending.clear()
                self._starts.add(-1)

        try:
            ran = start_and_run(job, self.live, self.keeper, self.calls.start, started)
        except BaseException as exc:  # noqa: B036 - recorded by start_and_run; to the waiters
            started()
            self.keeper.release(token)
            done.set_exception(exc)
            return
        started()
        if ran.result.straggler is not None and ran.result.straggler.alive():
            # Still held (since dispatch) while it runs on; released when it ends.
            self._park(ran, adapters, loop, done)
            return
        self.keeper.release(token)
        settle_straggler(ran, 0, self.keeper)
        self._record(ran, adapters, loop, done)

    def _record(self, ran: Ran, adapters: Adapters | None, loop: Loop, done: Future[bool]) -> None:
        if ran.live is not None and ran.live.fenced:
            try:
                done.set_result(finish_fenced(ran, self.live, adapters, loop))
            except BaseException as exc:  # noqa: B036 - handed to the waiters
                done.set_exception(exc)
            return
        self._completer.submit(ran, adapters, loop, done)

    def run_one_job(self, job: Job, *, adapters: Adapters | None = None, loop: Loop = None) -> bool:
        """``cron.scheduler.run_one_job`` on this runtime, in the caller's thread."""
        with self.bound():
            while True:
                ran = start_and_run(job, self.live, self.keeper, self.calls.start)
                settle_straggler(ran, None, self.keeper)
                if ran.live is not None and ran.live.fenced:
                    return finish_fenced(ran, self.live, adapters, loop)
                outcome = finish_runs([ran], self.live, self.timing, adapters, loop)[0]
                if not isinstance(outcome, Retry):
                    return outcome
                # The same slot again, after its backoff, in this thread: the caller waits.
                again = wait_for_retry(outcome, self.live, self.timing)
                if again is None:
                    return False
                job = again

    # -- retries in their backoff ------------------------------------------------------

    def _schedule_retry(
        self, r: Retry, adapters: Adapters | None, loop: Loop, fut: Future[bool]
    ) -> None:
        """Wait through the backoff on a thread of its own (not a pool worker: a backoff
        may last an hour), then queue the attempt on the pool like any run."""

        def wait_then_queue() -> None:
            try:
                job = wait_for_retry(r, self.live, self.timing)
            except BaseException as exc:  # noqa: B036 - handed to the waiters
                fut.set_exception(exc)
                return
            if job is None:
                fut.set_result(False)
                return
            cfg = read_config()
            token = job["fire_claim"]["token"]
            self.keeper.add_many(
                [(job["id"], token)], float(cfg_get(cfg, "cron", "claim_ttl", default=300))
            )
            self._starts.add(1)
            try:
                self._executor(int(cfg_get(cfg, "cron", "max_parallel_jobs", default=4))).submit(
                    self._bound_call, self._run_queued, job, adapters, loop, fut
                )
            except BaseException as exc:  # noqa: B036 - handed to the waiters
                self._starts.add(-1)
                self.keeper.release(token)
                fut.set_exception(exc)

        self.spawn(wait_then_queue, f"cronkit-retry-{r.job['id']}")

    # -- runaway runs ------------------------------------------------------------------

    def _park(self, ran: Ran, adapters: Adapters | None, loop: Loop, fut: Future[bool]) -> None:
        """Watch a runaway run (past its timeout, still running) until its work ends.

        Meanwhile it keeps its claim (so the job cannot start a second run) and
        its ledger row stays ``running`` (so ``status`` names it) — without
        holding one of the pool's workers. One watcher thread for all of them.
        """
        with self._parked_cond:
            self._parked.append((ran, adapters, loop, fut))
            if self._watcher is None or not self._watcher.is_alive():
                self._watcher = self.spawn(self._watch_parked, "cronkit-stragglers")

    def _watch_parked(self) -> None:
        while True:
            with self._parked_cond:
                if not self._parked:
                    self._watcher = None
                    return
                ended: list[_Parked] = []
                still: list[_Parked] = []
                for item in self._parked:
                    straggler = item[0].result.straggler
                    (still if straggler is not None and straggler.alive() else ended).append(item)
                self._parked = still
            for ran, adapters, loop, fut in ended:
                settle_straggler(ran, 0, self.keeper)
                self.keeper.release(ran.token)
                self._record(ran, adapters, loop, fut)
            time.sleep(STRAGGLER_POLL)

    # -- ending runs -------------------------------------------------------------------

    def _fence(self, fenced: list[tuple[str, str, float]]) -> None:
        ttl = float(cfg_get(read_config(), "cron", "claim_ttl", default=300))
        self.live.fence_runs(fenced, ttl)

    def live_runs(self) -> list[LiveRun]:
        """The runs this runtime has started whose results are not recorded yet."""
        return self.live.snapshot()

    def interrupt_running(self, *, term_grace: float = procgroup.TERM_GRACE) -> int:
        """``cron.scheduler.interrupt_running`` on this runtime."""
        return self.live.interrupt(term_grace=term_grace)

    def allow_starts(self) -> None:
        """Undo :meth:`interrupt_running`'s ban on new starts."""
        self.live.reopen()

    def abandon_running(self, reason: str) -> int:
        """``cron.scheduler.abandon_running`` on this runtime."""
        with self.bound():
            return self.live.abandon(reason)

    def close(self, *, timeout: float = 10.0, term_grace: float = procgroup.TERM_GRACE) -> bool:
        """Stop this runtime: no new start, running commands ended, the pool shut down.

        Waits up to ``timeout`` for the runs to be recorded; True if they were.
        Other runtimes of the process are not touched.
        """
        self.interrupt_running(term_grace=term_grace)
        done = self.wait_for_running(timeout)
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)
        return done


_default: Runtime | None = None
_default_lock = threading.Lock()


def default_runtime() -> Runtime:
    """The process's default runtime (created on first use; see the module docstring)."""
    global _default
    rt = _default
    if rt is None:
        with _default_lock:
            if _default is None:
                _default = Runtime()
            rt = _default
    return rt


__all__ = ["Runtime", "default_runtime"]
