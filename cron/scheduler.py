"""The tick and the run: what firing a job *means*, shared by every trigger provider.

``tick`` decides nothing itself: the store's batch claim picks the due jobs,
and ``run_one_job`` runs one claimed job end to end (ledger, runner, output
file, delivery, ``mark_job_run``). Providers call these; they never
reimplement them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import inspect
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cron import executions, jobs, metrics, paths, procgroup, runners
from cron import retry as retries
from cron.claim import RetryClaim, parse_ts
from cron.config import cfg_get, read_config
from cron.output import LiveOutput, open_output, write_output
from cron.procgroup import ProcessGroup
from cron.runners import RunContext, RunResult, run_action
from cron.store import Job, get_store

log = logging.getLogger(__name__)

Adapters = Mapping[str, Callable[..., Any]]

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()
_inflight: set[Future[bool]] = set()
_inflight_lock = threading.Lock()
# Dispatched jobs whose worker has not picked them up yet (see _Completer._run).
_queued = 0
_queued_cond = threading.Condition()
BOOKKEEPING_MAX_DELAY = 0.25
"""How long result bookkeeping may wait for a burst of queued starts (seconds)."""


def _starts_settled(timeout: float) -> None:
    """Wait until no dispatched job is waiting for a worker, or ``timeout`` passes."""
    with _queued_cond:
        _queued_cond.wait_for(lambda: _queued == 0, timeout=timeout)


def _executor(size: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != size:
            old = _pool
            _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="cronkit-job")
            _pool_size = size
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def running_jobs() -> int:
    """How many dispatched jobs have not finished yet (in this process)."""
    with _inflight_lock:
        return sum(1 for f in _inflight if not f.done())


def wait_for_running(timeout: float | None) -> bool:
    """Wait for this process's dispatched jobs; True if all finished in time."""
    with _inflight_lock:
        pending = [f for f in _inflight if not f.done()]
    if not pending:
        return True
    done, not_done = wait_futures(pending, timeout=timeout)
    return not not_done


@contextlib.contextmanager
def _tick_lock() -> Iterator[bool]:
    """``<home>/cron/.tick.lock``, without blocking. Yields False on contention.

    Any other OSError (permissions, a missing mount, a full disk) propagates:
    a tick that could not even try must not look like a clean one.
    """
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


def _log_done(fut: Future[bool]) -> None:
    with _inflight_lock:
        _inflight.discard(fut)
    exc = fut.exception()
    if exc is not None:
        log.error("cron job raised out of run_one_job", exc_info=exc)


def _remote_run_gone(row: dict[str, Any], now: datetime | None) -> bool:
    """Is the run of ``row``, owned by a process on another host, provably over?

    Its pid cannot be checked from here; its claim can (SPEC §11). A live run
    keeps its job's claim fresh (the claim keeper), so a claim with this
    token that went stale — by the store's clock — means its owner stopped.
    A row whose job no longer carries its token is over once it is older than
    ``claim_ttl`` (its owner released or lost the claim and never finished the row).
    """
    from cron import claim as rules

    store = get_store()
    at = now if now is not None else store.clock()
    ttl = store.claim_ttl
    stored = store.get(str(row["job_id"]))
    claim = (stored.job.get("fire_claim") or {}) if stored is not None else {}
    if claim.get("token") == row["id"]:
        return not rules.claim_is_live(stored.job, at, ttl) if stored is not None else True
    since = rules.parse_ts(row.get("claimed_at") or row.get("started_at"))
    return since is not None and (at - since).total_seconds() >= ttl


def recover_interrupted(*, now: datetime | None = None) -> int:
    """Settle runs whose owner process provably died: ledger ``unknown``, claim released.

    The ledger row becomes ``unknown`` (never rerun: the run may have had
    effects). The job's claim is released through ``mark_job_run`` with the
    dead run's own token, so it only applies if that claim is still the live
    one — and the next slot need not wait ``claim_ttl`` to be claimable.
    Returns the number of runs settled.
    """
    settled = executions.recover_interrupted_execution_rows(
        now=now, remote_gone=lambda row: _remote_run_gone(row, now)
    )
    for token, job_id in settled:
        try:
            jobs.mark_job_run(
                job_id,
                token,
                success=False,
                status="interrupted",
                now=now,
                error="the process running this job died; outcome unknown, not rerun",
            )
        except Exception:
            log.exception("could not release the claim of interrupted job %s", job_id)
    return len(settled)


def tick(
    *,
    now: datetime | None = None,
    sync: bool = True,
    verbose: bool = False,
    adapters: Adapters | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    can_dispatch: Callable[[], bool] | None = None,
) -> int:
    """Claim every due job and run the claimed ones; return how many were dispatched.

    1. Takes ``<home>/cron/.tick.lock`` without blocking; contention returns 0;
       any other OSError raises.
    2. If ``can_dispatch`` returns False, returns 0 and leaves due jobs intact.
    3. Claims due jobs in one store write (``jobs.claim_due_jobs``) and runs each
       via ``run_one_job`` on a pool of ``cron.max_parallel_jobs`` threads.
       ``sync=True`` waits for them; ``sync=False`` returns at once. The tick
       lock is released before any job runs.
    """
    with _tick_lock() as got:
        if not got:
            return 0
        if can_dispatch is not None and not can_dispatch():
            return 0
        since = time.monotonic()  # the claims are dated after this (fencing counts from it)
        claimed = jobs.claim_due_jobs(now)
    if not claimed:
        return 0
    futures = dispatch([job for job, _token in claimed], adapters=adapters, loop=loop,
                       verbose=verbose, claimed_since=since)
    if sync:
        wait_futures(futures)
    return len(claimed)


def dispatch(
    claimed: list[Job],
    *,
    adapters: Adapters | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    verbose: bool = False,
    claimed_since: float | None = None,
) -> list[Future[bool]]:
    """Queue claimed jobs on the process's pool of ``cron.max_parallel_jobs`` workers.

    Returns at once with one future per job, done when the run's bookkeeping
    is written (the result of ``run_one_job``). The tick and the webhook both
    dispatch here, so the bound holds for every trigger in the process. A job
    waiting for a free worker keeps its claim alive (refreshed like a running
    one), so a long queue never makes a claimed slot look crashed.
    ``claimed_since`` (``time.monotonic()``) is a moment before the claims were
    taken; fencing (SPEC §13) counts their age from it (default: now).
    """
    cfg = read_config()
    size = int(cfg_get(cfg, "cron", "max_parallel_jobs", default=4))
    ttl = float(cfg_get(cfg, "cron", "claim_ttl", default=300))
    pool = _executor(size)
    tokens: list[tuple[str, str]] = []
    for job in claimed:
        token = (job.get("fire_claim") or {}).get("token")
        if not token:
            raise ValueError(f"job {job.get('id')!r} carries no claim token; claim it first")
        tokens.append((job["id"], token))
    # Held from now, not from the start: a job queued behind a burst keeps its claim.
    _keeper.add_many(tokens, ttl, since=claimed_since)
    # Each future completes when its run's bookkeeping is written, not when the
    # worker is free: wait_for_running covers the whole run.
    futures: list[Future[bool]] = [Future() for _ in claimed]
    for fut in futures:
        fut.add_done_callback(_log_done)
    with _inflight_lock:
        _inflight.update(futures)
    _count_queued(len(claimed))
    for i, (job, fut) in enumerate(zip(claimed, futures, strict=True)):
        try:
            pool.submit(_pipelined, job, adapters, loop, fut)
        except BaseException:
            # Not submitted: this job and the ones after it never run here.
            _count_queued(-(len(claimed) - i))
            for _job_id, token in tokens[i:]:
                _keeper.release(token)
            with _inflight_lock:
                _inflight.difference_update(futures[i:])
            raise
    return futures


@dataclass
class _Held:
    """One claim the keeper keeps alive (times on the local monotonic clock)."""

    job_id: str
    ttl: float
    every: float
    due: float
    """When to refresh it next."""
    confirmed: float
    """A moment no later than the claim's current date: the start of the last refresh
    that succeeded (the store dates the claim after that), or of the claim itself."""
    fenced: bool = False

    @property
    def fence_at(self) -> float:
        return self.confirmed + self.ttl - self.every * FENCE_MARGIN


FENCE_MARGIN = 1.0
"""Refresh intervals (``claim_ttl / 3``) between fencing a run and its claim going stale.

A claim is refreshed every third of ``claim_ttl``; after a failed refresh it is
retried every twelfth. A run whose claim has not been confirmed for
``claim_ttl - claim_ttl / 3`` (two regular attempts, plus the quick retries
between them, all failed) is ended then: its group gets SIGTERM and, after at
most half an interval (:func:`_fence_grace`), SIGKILL — so it is gone with
half an interval (``claim_ttl / 6``) to spare before another node may judge
the claim stale by the database's clock. One interval, not two: with
refreshes every third of the ttl, two would fence at the first missed refresh.
"""
FENCE_RETRY = 4
"""A failed refresh round is retried after ``claim_ttl / 3 / FENCE_RETRY`` seconds."""


def _fence_grace(ttl: float) -> float:
    """SIGTERM → SIGKILL grace for a fenced run: it must be gone before its claim is stale."""
    return min(procgroup.TERM_GRACE, ttl / 6)


FenceHook = Callable[[list[tuple[str, str, float]]], None]
"""Called with ``(job_id, token, seconds unconfirmed)`` of claims about to go stale."""


class _ClaimKeeper:
    """Re-dates held claims every ``claim_ttl / 3`` so they never look crashed — and fences.

    One thread for the whole process (not one per run): holding a claim is a
    dict insert, so starting a job costs no thread start. Every claim due for
    a refresh (or due within half an interval) is re-dated in one round, one
    store write (``jobs.refresh_claims``: one ``swap_many``). A round runs on a
    short-lived thread of its own, so a store call that hangs (a partitioned
    network) never delays the fencing check: a claim not confirmed for
    ``claim_ttl`` minus :data:`FENCE_MARGIN` intervals is handed to ``on_fence``
    so its run ends before any node may take the claim over (SPEC §13).
    """

    def __init__(self, on_fence: FenceHook | None = None) -> None:
        self._cond = threading.Condition()
        self._held: dict[str, _Held] = {}
        self._thread: threading.Thread | None = None
        self._in_round = False
        self._on_fence = on_fence
        self.rounds = 0
        """Refresh rounds started (each one store write)."""

    def add_many(self, held: list[tuple[str, str]], ttl: float, *,
                 since: float | None = None) -> None:
        """Keep the claims of these ``(job_id, token)`` pairs alive until :meth:`release`.

        ``since`` (monotonic) is when the claims were taken, if before now.
        """
        every = max(ttl / 3, 0.05)
        with self._cond:
            now = time.monotonic()
            confirmed = min(since, now) if since is not None else now
            for job_id, token in held:
                self._held[token] = _Held(job_id, ttl, every, confirmed + every, confirmed)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="cronkit-claim-keeper", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def release(self, token: str) -> None:
        with self._cond:
            self._held.pop(token, None)

    @contextlib.contextmanager
    def hold(self, job_id: str, token: str, ttl: float) -> Iterator[None]:
        """Keep one claim alive for the block (a run started outside :func:`dispatch`)."""
        with self._cond:
            kept = self._held.get(token)
        if kept is not None:
            # Already held (since dispatch): keep its record, or the time it went unconfirmed.
            yield
            return
        self.add_many([(job_id, token)], ttl)
        try:
            yield
        finally:
            self.release(token)

    def _run(self) -> None:
        while True:
            fence: list[tuple[str, str, float]] = []
            pairs: list[tuple[str, str]] = []
            with self._cond:
                if not self._held and not self._in_round:
                    if not self._cond.wait(timeout=30) and not self._held:
                        self._thread = None
                        return
                    continue
                now = time.monotonic()
                for token, h in self._held.items():
                    if not h.fenced and now >= h.fence_at:
                        h.fenced = True
                        fence.append((h.job_id, token, now - h.confirmed))
                if not self._in_round and any(h.due <= now for h in self._held.values()):
                    # Those due soon ride along: one write per round, fewer rounds.
                    pairs = [(h.job_id, t) for t, h in self._held.items()
                             if h.due <= now + h.every / 2]
                    self._in_round = True
                    self.rounds += 1
                if not fence and not pairs:
                    wake = [h.fence_at for h in self._held.values() if not h.fenced]
                    if not self._in_round:
                        wake += [h.due for h in self._held.values()]
                    self._cond.wait(timeout=max(0.0, min(wake, default=now + 30) - now))
                    continue
            if pairs:
                threading.Thread(target=self._refresh_round, args=(pairs, now),
                                 name="cronkit-claim-refresh", daemon=True).start()
            if fence and self._on_fence is not None:
                try:
                    self._on_fence(fence)
                except Exception:
                    log.exception("could not fence %d run(s)", len(fence))

    def _refresh_round(self, pairs: list[tuple[str, str]], started: float) -> None:
        try:
            held = jobs.refresh_claims(pairs)
        except Exception:
            log.warning("could not refresh %d claim(s)", len(pairs), exc_info=True)
            with self._cond:
                now = time.monotonic()
                for _job_id, token in pairs:
                    h = self._held.get(token)
                    if h is not None:
                        h.due = now + h.every / FENCE_RETRY
                self._in_round = False
                self._cond.notify()
            return
        with self._cond:
            for (_job_id, token), still in zip(pairs, held, strict=True):
                h = self._held.get(token)
                if h is None:
                    continue
                if still:
                    h.confirmed = max(h.confirmed, started)
                    h.due = started + h.every
                else:
                    self._held.pop(token, None)  # the claim is gone
            self._in_round = False
            self._cond.notify()


_keeper = _ClaimKeeper(on_fence=lambda fenced: _fence(fenced))


def _deliver(
    job: Job,
    result: RunResult,
    adapters: Adapters | None,
    loop: asyncio.AbstractEventLoop | None,
) -> None:
    """Hand the result to the host's delivery adapters named in ``job["deliver"]``.

    Delivery is best-effort: the run already happened, so a failing adapter is
    logged and does not change the run's status.
    """
    names = job.get("deliver") or []
    if not adapters or not names:
        return
    for name in names if isinstance(names, list) else [names]:
        fn = adapters.get(name)
        if fn is None:
            log.warning("job %s: no delivery adapter named %r", job["id"], name)
            continue
        try:
            out = fn(job, result)
            if inspect.isawaitable(out):
                if loop is not None and loop.is_running():
                    asyncio.run_coroutine_threadsafe(out, loop).result(timeout=60)  # type: ignore[arg-type]
                else:
                    asyncio.run(out)  # type: ignore[arg-type]
        except Exception:
            log.exception("job %s: delivery via %r failed", job["id"], name)


def _timeout_for(job: Job, cfg: dict[str, Any]) -> float | None:
    value = job.get("timeout")
    if value is None:
        value = cfg_get(cfg, "cron", "job_timeout", default=600)
    return float(value) if value else None


@dataclass
class LiveRun:
    """A run this process has started and not yet recorded (see :func:`live_runs`)."""

    token: str
    job_id: str
    name: str | None
    source: str
    scheduled_at: str | None
    started: float
    """Wall-clock start (epoch seconds)."""
    timeout: float | None
    group: ProcessGroup | None = None
    interrupted: bool = False
    acted: bool = False
    """The action has returned (whatever its outcome, it was not interrupted after that)."""
    runaway: bool = False
    """Past its timeout and still running (a python callable that cannot be stopped)."""
    kind: str = "command"
    fenced: str | None = None
    """Why this run was fenced (its claim could not be kept live), if it was."""


class _LiveRuns:
    """Every run of this process from ``running`` until its result is recorded.

    The gateway's shutdown ends their process groups from here; the shutdown
    flag (:meth:`close`) cancels runs that have not started their command yet.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, LiveRun] = {}
        self._fenced_queued: dict[str, str] = {}
        self.closing = False
        self.wake = threading.Event()
        """Set by :meth:`close`: retries waiting through their backoff stop waiting."""

    def add(self, run: LiveRun) -> None:
        with self._lock:
            self._runs[run.token] = run

    def get(self, token: str) -> LiveRun | None:
        with self._lock:
            return self._runs.get(token)

    def remove(self, token: str) -> None:
        with self._lock:
            self._runs.pop(token, None)

    def snapshot(self) -> list[LiveRun]:
        with self._lock:
            return list(self._runs.values())

    def spawned(self, token: str, group: ProcessGroup) -> bool:
        """``RunContext.on_spawn`` of one run: record its group; False cancels it."""
        with self._lock:
            run = self._runs.get(token)
            if run is not None:
                run.group = group
                if run.fenced:
                    return False
            if self.closing:
                if run is not None:
                    run.interrupted = True
                return False
        try:
            executions.record_process_group(token, group)
        except Exception:
            # The run is still tracked here; only recovery after a crash loses sight of it.
            log.exception("could not record process group %d on ledger row %s", group.pgid, token)
        return True

    def close(self) -> list[LiveRun]:
        """Stop letting commands start; mark the runs still in their action interrupted."""
        with self._lock:
            self.closing = True
            self.wake.set()
            runs = list(self._runs.values())
            for run in runs:
                if not run.acted:
                    run.interrupted = True
        return runs

    def acted(self, run: LiveRun) -> bool:
        """The action of ``run`` returned; True if it had been interrupted first."""
        with self._lock:
            run.acted = True
            return run.interrupted

    def fence(self, token: str, note: str) -> LiveRun | None:
        """Mark the run of ``token`` fenced (a command not started yet will not start).

        Returns the run if it is live here, else None (it is queued: it is
        cancelled when it starts, see :meth:`fenced_note`).
        """
        with self._lock:
            run = self._runs.get(token)
            if run is None:
                self._fenced_queued[token] = note
                return None
            run.fenced = note
            if not run.acted:
                run.interrupted = True
            return run

    def fenced_note(self, token: str) -> str | None:
        """Why the queued run of ``token`` was fenced before it started (consumed)."""
        with self._lock:
            return self._fenced_queued.pop(token, None)

    def stopping(self) -> bool:
        """:attr:`closing`, read afresh (a call, so a loop re-reads it every time)."""
        return self.closing

    def reopen(self) -> None:
        with self._lock:
            self.closing = False
            self.wake.clear()


_live = _LiveRuns()


def claim_keeper() -> _ClaimKeeper:
    """The claim keeper of this process's runs (its ``rounds`` count refresh writes)."""
    return _keeper


def live_runs() -> list[LiveRun]:
    """The runs this process has started whose results are not recorded yet."""
    return _live.snapshot()


def interrupt_running(*, term_grace: float = procgroup.TERM_GRACE) -> int:
    """End this process's running jobs (the gateway's shutdown, after its grace).

    No further command starts here. Each running command's process group gets
    SIGTERM, and SIGKILL ``term_grace`` seconds later if any of it is still
    alive; those runs are recorded ``interrupted``. A python callable cannot
    be stopped: it stays live (see :func:`abandon_running`). Returns how many
    process groups were signalled.
    """
    runs = _live.close()
    groups = [r.group for r in runs if r.group is not None]
    for group in groups:
        log.warning("ending process group %d (SIGTERM, SIGKILL after %gs)", group.pgid,
                    term_grace)
        group.signal(signal.SIGTERM)
    deadline = time.monotonic() + term_grace
    for group in groups:
        if not group.wait_gone(max(0.0, deadline - time.monotonic())):
            group.signal(signal.SIGKILL)
    for group in groups:
        if not group.wait_gone(2.0):
            log.error("process group %d survived SIGKILL", group.pgid)
    return len(groups)


def _fence(fenced: list[tuple[str, str, float]]) -> None:
    """End the runs whose claims could not be refreshed, before the claims can go stale.

    A ``command`` run's process group gets SIGTERM, then SIGKILL after
    :func:`_fence_grace` (on a thread of its own: the keeper goes on). A run
    not started yet will not start. A ``python`` target (or any runner that
    starts no process group) cannot be fenced: it is logged at ERROR and runs
    on, and another node may start the job's next slot meanwhile.
    """
    ttl = float(cfg_get(read_config(), "cron", "claim_ttl", default=300))
    for job_id, token, unconfirmed in fenced:
        note = (f"fenced: its claim could not be refreshed for {unconfirmed:.1f}s "
                f"(claim_ttl {ttl:g}s; store unreachable?), so the run was ended before "
                "another node could take the claim over")
        run = _live.fence(token, note)
        if run is None:
            log.error("job %s: %s; its queued run will not start", job_id, note)
        elif run.acted:
            continue
        elif run.group is not None:
            log.error("job %s (%s): %s; ending process group %d", job_id, run.name, note,
                      run.group.pgid)
            threading.Thread(target=run.group.terminate, args=(_fence_grace(ttl),),
                             name=f"cronkit-fence-{job_id}", daemon=True).start()
        elif run.kind == "command":
            log.error("job %s (%s): %s; its command will not start", job_id, run.name, note)
        else:
            log.error("job %s (%s): its claim could not be refreshed for %.1fs and a %s "
                      "target cannot be fenced: it keeps running, and another node may run "
                      "the job meanwhile", job_id, run.name, unconfirmed, run.kind)


FENCED_RECORD_RETRY = 1.0
"""Seconds between attempts to record a fenced run's result while the store is away."""


def _finish_fenced(
    ran: _Ran, adapters: Adapters | None, loop: asyncio.AbstractEventLoop | None
) -> bool:
    """Record a fenced run once the store answers again (it was fenced for not answering).

    The result is applied only if the run's token still holds the claim
    (``mark_job_runs`` fences by token); a claim another node took over
    refuses it, and a ledger row settled ``unknown`` keeps that outcome.
    Gives up when the runtime is stopping. Never retried (SPEC §13: the slot
    may have run elsewhere).
    """
    out = _write_output(ran)
    _deliver(ran.job, ran.result, adapters, loop)
    job_id = ran.job["id"]
    marked = closed = False
    warned = False
    try:
        while not (marked and closed):
            try:
                if not marked:
                    ok = jobs.mark_job_runs(
                        [(job_id, ran.token, ran.result.status, ran.result.error)])[0]
                    marked = True
                    if not ok:
                        log.warning("job %s: result not recorded on the job; its claim %s is "
                                    "no longer live", job_id, ran.token)
                if not closed:
                    executions.finish_many(
                        [(ran.token, ran.result.status, ran.result.error, out)])
                    closed = True
            except ConnectionError as exc:
                if _live.stopping():
                    log.error("job %s: fenced run %s not recorded (the store is unreachable "
                              "and the scheduler is stopping): %s", job_id, ran.token, exc)
                    break
                if not warned:
                    log.warning("job %s: fenced run %s waits for the store to record it: %s",
                                job_id, ran.token, exc)
                    warned = True
                _live.wake.wait(FENCED_RECORD_RETRY)
    finally:
        _live.remove(ran.token)
        _log_end(ran.job, ran.result.status, ran.live)
    return ran.result.status == "ok"


def allow_starts() -> None:
    """Undo :func:`interrupt_running`'s ban on new starts (a gateway stopped in-process)."""
    _live.reopen()


def abandon_running(reason: str) -> int:
    """Record every run still live here as ended because this process exits now.

    For the runs nothing could stop (a python callable past its timeout, or
    one still inside its grace): the process is about to exit, which ends
    them, so their rows are closed (``timeout`` for a run already past its
    timeout, else ``interrupted``) and their claims released. Returns how many.
    """
    runs = _live.close()
    for run in runs:
        status = "timeout" if run.runaway else "interrupted"
        error = f"{reason}; the run ended with the process"
        with contextlib.suppress(Exception):
            jobs.mark_job_run(run.job_id, run.token, success=False, error=error, status=status)
        with contextlib.suppress(Exception):
            executions.finish(run.token, status=status, error=error)
        _live.remove(run.token)
    return len(runs)


@dataclass
class _Ran:
    """A job whose action has run; what is left is bookkeeping."""

    job: Job
    token: str
    result: RunResult
    cfg: dict[str, Any]
    live: LiveRun | None = None
    output: LiveOutput | None = None


def _open_output(job: Job, cfg: dict[str, Any]) -> LiveOutput | None:
    """The run's output file, created before it starts (None if it cannot be: run anyway)."""
    try:
        retention = int(cfg_get(cfg, "cron", "output_retention", default=50))
        # Streamed up to the runner's own cap; past it the file ends as the kept tail.
        return open_output(job["id"], retention=retention, limit=runners.MAX_OUTPUT_BYTES)
    except Exception:
        log.exception("job %s: could not create its output file", job["id"])
        return None


def _lateness_ms(scheduled_at: str | None, started: float) -> str:
    slot = parse_ts(scheduled_at)
    if slot is None:
        return "-"
    return f"{(started - slot.timestamp()) * 1000:.0f}"


def _start_and_run(job: Job) -> _Ran:
    """Stage 1: ledger row ``running``, run the action (claim kept alive meanwhile).

    A ``BaseException`` from the runner is recorded — ledger
    ``interrupted``/``error``, claim released — before it propagates. A run
    interrupted by :func:`interrupt_running` is recorded ``interrupted``
    whatever its command's exit looked like.
    """
    claim = job.get("fire_claim") or {}
    token = claim.get("token")
    if not token:
        raise ValueError(f"job {job.get('id')!r} carries no claim token; claim it first")
    job_id = job["id"]
    scheduled_at = claim.get("scheduled_at")
    cfg = read_config()
    ttl = float(cfg_get(cfg, "cron", "claim_ttl", default=300))
    out = _open_output(job, cfg)
    try:
        source = executions.start_run(
            token, job_id=job_id, scheduled_at=scheduled_at,
            output_path=out.path if out is not None else None,
        ) or "tick"
    except BaseException:
        if out is not None:
            out.close()
        raise
    timeout = _timeout_for(job, cfg)
    action = job.get("action")
    kind = str(action.get("kind") or "command") if isinstance(action, dict) else "command"
    live = LiveRun(token, job_id, job.get("name"), source, scheduled_at, time.time(), timeout,
                   kind=kind, fenced=_live.fenced_note(token))
    _live.add(live)
    metrics.observe_run_start(job_id, scheduled_at, live.started)
    log.info(
        "run start: job %s (%s) slot %s, %s ms late, source %s",
        job_id, job.get("name"), scheduled_at or "-", _lateness_ms(scheduled_at, live.started),
        source,
    )
    ctx = RunContext(
        timeout=timeout, scheduled_at=scheduled_at,
        on_spawn=lambda group: _live.spawned(token, group), output=out,
    )
    try:
        with _keeper.hold(job_id, token, ttl):
            if live.fenced:
                live.interrupted = True
                result = RunResult("interrupted", "", f"cancelled before it started: {live.fenced}")
            elif _live.closing:
                live.interrupted = True
                result = RunResult(
                    "interrupted", "", "cancelled before it started (the scheduler is stopping)"
                )
            else:
                result = run_action(job, ctx)
    except BaseException as exc:
        status = "error" if isinstance(exc, Exception) else "interrupted"
        message = f"{type(exc).__name__}: {exc}"
        if out is not None:
            with contextlib.suppress(Exception):
                out.finish("", f"[cronkit] {status}: {message}\n")
        with contextlib.suppress(Exception):
            jobs.mark_job_run(job_id, token, success=False, error=message, status=status)
        with contextlib.suppress(Exception):
            executions.finish(token, status=status, error=message)
        _live.remove(token)
        _log_end(job, status, live)
        raise
    if _live.acted(live) and live.fenced and live.kind == "command":
        if not (result.error or "").startswith("cancelled before it started: "):
            ended = "cancelled before the command started" if result.exit_code is None \
                else (result.error or "no error")
            result = RunResult("interrupted", result.output, f"{live.fenced} ({ended})",
                               result.exit_code)
    elif live.interrupted and not live.fenced and result.status != "interrupted":
        result = RunResult(
            "interrupted",
            result.output,
            f"the scheduler stopped: the run was ended ({result.error or 'no error'})",
            result.exit_code,
        )
    if result.straggler is not None and result.straggler.alive():
        live.runaway = True
        log.warning(
            "job %s (%s): %s; its claim is kept until it ends", job_id, job.get("name"),
            result.error,
        )
    return _Ran(job, token, result, cfg, live, out)


def _log_end(job: Job, status: str, live: LiveRun | None) -> None:
    took = f"{time.time() - live.started:.3f}s" if live is not None else "-"
    metrics.observe_run_end(job["id"], status, time.time() - live.started if live else None)
    log.info("run end: job %s (%s) %s in %s", job["id"], job.get("name"), status, took)


def _settle_straggler(ran: _Ran, timeout: float | None) -> bool:
    """Wait for a runaway run to really end, keeping its claim; True once it has.

    Its result then replaces the one the runner gave at the timeout.
    """
    straggler = ran.result.straggler
    if straggler is None:
        return True
    ttl = float(cfg_get(ran.cfg, "cron", "claim_ttl", default=300))
    with _keeper.hold(ran.job["id"], ran.token, ttl):
        if not straggler.wait(timeout):
            return False
    try:
        ran.result = straggler.final()
    except BaseException as exc:  # noqa: B036 - the work is over either way
        ran.result = RunResult("timeout", "", f"{type(exc).__name__}: {exc}")
    return True


_Parked = tuple["_Ran", "Adapters | None", "asyncio.AbstractEventLoop | None", "Future[bool]"]


class _Stragglers:
    """One thread watching runaway runs; each goes to bookkeeping when it really ends.

    Meanwhile it keeps its claim (so the job cannot start a second run) and
    its ledger row stays ``running`` (so ``status`` names it) — without
    holding one of the pool's workers.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._parked: list[_Parked] = []
        self._thread: threading.Thread | None = None

    def park(
        self,
        ran: _Ran,
        adapters: Adapters | None,
        loop: asyncio.AbstractEventLoop | None,
        fut: Future[bool],
    ) -> None:
        """Watch ``ran`` (its claim still held by the keeper) until its work ends."""
        with self._cond:
            self._parked.append((ran, adapters, loop, fut))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="cronkit-stragglers", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._parked:
                    self._thread = None
                    return
                ended: list[_Parked] = []
                still: list[_Parked] = []
                for item in self._parked:
                    straggler = item[0].result.straggler
                    (still if straggler is not None and straggler.alive() else ended).append(item)
                self._parked = still
            for ran, adapters, loop, fut in ended:
                _settle_straggler(ran, 0)
                _keeper.release(ran.token)
                _completer.submit(ran, adapters, loop, fut)
            time.sleep(0.1)


_stragglers = _Stragglers()


def _write_output(ran: _Ran) -> str | None:
    result = ran.result
    try:
        note = None
        if result.error and result.status != "ok":
            note = f"[cronkit] {result.status}: {result.error}\n"
        if ran.output is not None:
            return str(ran.output.finish(result.output, note))
        text = result.output
        if note:
            text = f"{text}\n{note}" if text else note
        retention = int(cfg_get(ran.cfg, "cron", "output_retention", default=50))
        return str(write_output(ran.job["id"], text, retention=retention))
    except Exception:
        log.exception("job %s: could not write its output file", ran.job["id"])
        return None


@dataclass
class _Retry:
    """A failed attempt whose slot runs again: the job carries the claim, handed on."""

    job: Job
    token: str
    attempt: int
    start_at: datetime
    status: str
    """The failed attempt's outcome: what the slot records if the retry never starts."""
    error: str | None


_timing = retries.RetryTiming()


def retry_timing() -> retries.RetryTiming:
    """The clock and random source retries wait on (see :func:`set_retry_timing`)."""
    return _timing


def set_retry_timing(timing: retries.RetryTiming | None) -> retries.RetryTiming:
    """Make retries wait on ``timing`` (None: the wall clock); returns the one replaced.

    The seam for tests and simulations: with a :class:`cron.retry.FakeClock` a
    backoff passes at once, in the clock's time, and claims are refreshed in it.
    """
    global _timing
    previous = _timing
    _timing = timing if timing is not None else retries.RetryTiming()
    return previous


def _with_note(result: RunResult, note: str) -> RunResult:
    return replace(result, error=f"{result.error or result.status}; {note}")


def _plan_retry(ran: _Ran) -> _Retry | None:
    """After an attempt: hand its claim to the next attempt, or let the slot end here.

    A job with no retries configured costs nothing here (no store read). When
    the slot ends although a policy is set, the attempt's error says why.
    """
    result = ran.result
    policy = retries.policy_for(ran.job, ran.cfg)
    if policy.max <= 0 or result.status not in retries.RETRY_STATUSES:
        return None
    job_id = ran.job["id"]
    attempt = int((ran.job.get("fire_claim") or {}).get("attempt") or 1)
    timing = _timing
    now = timing.clock.now()
    try:
        current = jobs.get_job(job_id)
    except Exception:
        log.exception("job %s: could not read it to plan a retry; the slot ends here", job_id)
        return None
    next_slot = parse_ts((current or {}).get("next_run_at"))
    plan = retries.plan_retry(status=result.status, attempt=attempt, policy=policy, now=now,
                              next_slot=next_slot, rng=timing.rng)
    if plan.verdict is retries.RetryVerdict.RETRY and plan.at is not None:
        source = ran.live.source if ran.live is not None else "tick"
        try:
            verdict, token, job = jobs.claim_retry(
                job_id, ran.token, attempt=plan.attempt, start_at=plan.at, now=now, source=source
            )
        except Exception:
            log.exception("job %s: could not hand its claim to retry %d", job_id, attempt)
            verdict, token, job = RetryClaim.LOST, None, None
        if verdict is RetryClaim.GRANTED and token is not None and job is not None:
            log.info("job %s (%s): attempt %d %s; retry %d of %d in %.1fs", job_id,
                     ran.job.get("name"), attempt, result.status, attempt, policy.max, plan.delay)
            ran.result = _with_note(result, plan.note)
            return _Retry(job, token, plan.attempt, plan.at, result.status, result.error)
        notes = {
            RetryClaim.PAST_NEXT_SLOT: f"retry {attempt} of {policy.max} not run: it would "
                                       f"start at {plan.at.isoformat()}, not before the next slot",
            RetryClaim.PAUSED: f"retry {attempt} of {policy.max} not run: the job is paused",
            RetryClaim.LOST: f"retry {attempt} of {policy.max} not run: the claim is gone",
        }
        ran.result = _with_note(result, notes.get(verdict, "not retried"))
        return None
    if plan.note:
        ran.result = _with_note(result, plan.note)
    return None


def _finish_runs(
    runs: list[_Ran], adapters: Adapters | None, loop: asyncio.AbstractEventLoop | None
) -> list[bool | _Retry]:
    """Stage 2 for a batch: output files, delivery, one store write, one ledger write.

    A failed attempt whose slot is retried (:func:`_plan_retry`) is not
    delivered and leaves the job as it is: its claim has passed to the next
    attempt, which is returned in its place.
    """
    outputs = []
    outcomes: list[bool | _Retry] = []
    for ran in runs:
        outputs.append(_write_output(ran))
        again = _plan_retry(ran)
        outcomes.append(again if again is not None else ran.result.status == "ok")
        if again is None:
            _deliver(ran.job, ran.result, adapters, loop)
    final = [r for r, out in zip(runs, outcomes, strict=True) if not isinstance(out, _Retry)]
    try:
        applied = jobs.mark_job_runs(
            [(r.job["id"], r.token, r.result.status, r.result.error) for r in final]
        )
        for ran, ok in zip(final, applied, strict=True):
            if not ok:
                log.warning(
                    "job %s: result not recorded on the job; its claim %s is no longer live",
                    ran.job["id"],
                    ran.token,
                )
    finally:
        # The ledger rows are closed even if the store write failed (e.g. a lock
        # timeout): the runs happened, and their claims simply expire.
        try:
            executions.finish_many(
                [
                    (r.token, r.result.status, r.result.error, out)
                    for r, out in zip(runs, outputs, strict=True)
                ]
            )
        finally:
            for ran, out in zip(runs, outcomes, strict=True):
                _live.remove(ran.token)
                _log_end(ran.job, ran.result.status, ran.live)
                if isinstance(out, _Retry):
                    # Waiting counts as live: a stopping scheduler ends the wait.
                    _live.add(LiveRun(out.token, out.job["id"], out.job.get("name"),
                                      ran.live.source if ran.live else "tick",
                                      (out.job.get("fire_claim") or {}).get("scheduled_at"),
                                      time.time(), None))
    return outcomes


def _wait_for_retry(r: _Retry) -> Job | None:
    """Hold the claim through the backoff, then return the job to run — or settle the slot.

    The claim is re-dated every ``claim_ttl / 3`` of the retry clock's time,
    so it stays live however long the backoff. The attempt does not start if
    the scheduler is stopping, the job was paused or its claim lost, or its
    next slot has come meanwhile (a late wake): then its ``claimed`` row is
    closed saying why, and the slot ends with the failed attempt's outcome.
    """
    job_id = r.job["id"]
    ttl = float(cfg_get(read_config(), "cron", "claim_ttl", default=300))
    step = max(ttl / 3, 0.05)
    clock = _timing.clock
    try:
        while not _live.stopping():
            remaining = (r.start_at - clock.now()).total_seconds()
            if remaining <= 0:
                break
            clock.sleep(min(remaining, step), _live.wake)
            if _live.stopping():
                break
            try:
                if not jobs.refresh_claim(job_id, r.token, now=clock.now()):
                    break  # the claim is gone: may_start says so below
            except Exception:
                log.warning("job %s: could not refresh its claim during a backoff", job_id,
                            exc_info=True)
    except BaseException as exc:
        # Ctrl-C in a synchronous `cronkit run`: the slot ends here, its claim released.
        note = f"retry {r.attempt - 1} not run: {type(exc).__name__} during its backoff"
        with contextlib.suppress(Exception):
            jobs.mark_job_run(job_id, r.token, success=False, status=r.status,
                              error=f"{r.error or r.status}; {note}")
        with contextlib.suppress(Exception):
            executions.finish(r.token, status="interrupted", error=note)
        _live.remove(r.token)
        raise
    now = clock.now()
    if _live.stopping():
        verdict, current = None, None
    else:
        verdict, current = jobs.retry_may_start(job_id, r.token, now=now)
        if verdict is RetryClaim.GRANTED and current is not None:
            metrics.observe_retry(job_id)  # a retry attempt of the slot starts now
            return current
    why = {
        None: "the scheduler stopped before it could start",
        RetryClaim.PAUSED: "the job was paused during the backoff",
        RetryClaim.LOST: "the job's claim was lost during the backoff (job removed?)",
        RetryClaim.PAST_NEXT_SLOT: "the job's next slot came before it could start",
    }[verdict]
    note = f"retry {r.attempt - 1} not run: {why}"
    status = "interrupted" if verdict is None else "skipped"
    try:
        jobs.mark_job_run(job_id, r.token, success=False, status=r.status,
                          error=f"{r.error or r.status}; {note}", now=now)
    finally:
        with contextlib.suppress(Exception):
            executions.finish(r.token, status=status, error=note)
        _live.remove(r.token)
    log.info("job %s: %s", job_id, note)
    return None


class _Retries:
    """Retries waiting through their backoff, one thread each, off the worker pool.

    A backoff may last an hour; it must not hold one of ``max_parallel_jobs``
    workers. When it ends, the attempt is queued on the pool like any run.
    """

    def schedule(
        self,
        r: _Retry,
        adapters: Adapters | None,
        loop: asyncio.AbstractEventLoop | None,
        fut: Future[bool],
    ) -> None:
        threading.Thread(
            target=self._wait_then_queue, args=(r, adapters, loop, fut),
            name=f"cronkit-retry-{r.job['id']}", daemon=True,
        ).start()

    @staticmethod
    def _wait_then_queue(
        r: _Retry,
        adapters: Adapters | None,
        loop: asyncio.AbstractEventLoop | None,
        fut: Future[bool],
    ) -> None:
        try:
            job = _wait_for_retry(r)
        except BaseException as exc:  # noqa: B036 - handed to the waiters
            fut.set_exception(exc)
            return
        if job is None:
            fut.set_result(False)
            return
        cfg = read_config()
        token = job["fire_claim"]["token"]
        _keeper.add_many([(job["id"], token)],
                         float(cfg_get(cfg, "cron", "claim_ttl", default=300)))
        _count_queued(1)
        try:
            _executor(int(cfg_get(cfg, "cron", "max_parallel_jobs", default=4))).submit(
                _pipelined, job, adapters, loop, fut
            )
        except BaseException as exc:  # noqa: B036 - handed to the waiters
            _count_queued(-1)
            _keeper.release(token)
            fut.set_exception(exc)


_retries = _Retries()


def run_one_job(
    job: Job,
    *,
    adapters: Adapters | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
) -> bool:
    """Run one claimed job end to end; True on success.

    ``job`` carries its claim (``job["fire_claim"]["token"]``). Order: ledger
    row → ``running``; run the action through its runner with the job's
    timeout (claim refreshed meanwhile); write the output file; deliver;
    ``mark_job_run``; close the ledger row. A ``BaseException`` from the
    runner (``KeyboardInterrupt``, ``SystemExit`` ...) is recorded — ledger
    ``interrupted`` (``error`` for an ordinary exception), claim released —
    before it propagates. A python callable that outlives its timeout is
    waited for (its claim kept) before the result is recorded: the run ends
    when its work does.
    """
    while True:
        ran = _start_and_run(job)
        _settle_straggler(ran, None)
        if ran.live is not None and ran.live.fenced:
            return _finish_fenced(ran, adapters, loop)
        outcome = _finish_runs([ran], adapters, loop)[0]
        if not isinstance(outcome, _Retry):
            return outcome
        # The same slot again, after its backoff, in this thread: the caller waits.
        again = _wait_for_retry(outcome)
        if again is None:
            return False
        job = again


class _Completer:
    """One thread that does the tick's post-run bookkeeping in batches.

    Workers hand over as soon as an action returns, so a burst of due jobs
    is not throttled by per-run store and ledger writes: results that finish
    together are recorded with one store write and one ledger transaction.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[
            tuple[_Ran, Adapters | None, asyncio.AbstractEventLoop | None, Future[bool]]
        ] = []
        self._thread: threading.Thread | None = None

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="cronkit-completer", daemon=True)
            self._thread.start()

    def submit(
        self,
        ran: _Ran,
        adapters: Adapters | None,
        loop: asyncio.AbstractEventLoop | None,
        fut: Future[bool],
    ) -> None:
        with self._cond:
            self._queue.append((ran, adapters, loop, fut))
            self._ensure_thread()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    if not self._cond.wait(timeout=30):
                        self._thread = None
                        return
            # Starts before bookkeeping: while a burst still waits for workers, the
            # output files and result writes would compete with those starts for
            # the GIL. They wait (bounded) and are then written in one bigger batch.
            _starts_settled(BOOKKEEPING_MAX_DELAY)
            with self._cond:
                batch, self._queue = self._queue, []
            # Group by delivery target so each group shares one bookkeeping pass.
            groups: dict[tuple[int, int], list[tuple[_Ran, Future[bool]]]] = {}
            targets: dict[tuple[int, int], tuple[Adapters | None, Any]] = {}
            for ran, adapters, loop, fut in batch:
                key = (id(adapters), id(loop))
                groups.setdefault(key, []).append((ran, fut))
                targets[key] = (adapters, loop)
            for key, items in groups.items():
                adapters, loop = targets[key]
                try:
                    oks = _finish_runs([r for r, _ in items], adapters, loop)
                except BaseException as exc:  # noqa: B036 - handed to the waiters
                    for _, fut in items:
                        fut.set_exception(exc)
                    continue
                for (_, fut), ok in zip(items, oks, strict=True):
                    if isinstance(ok, _Retry):
                        _retries.schedule(ok, adapters, loop, fut)
                    else:
                        fut.set_result(ok)


_completer = _Completer()


def _count_queued(delta: int) -> None:
    global _queued
    with _queued_cond:
        _queued += delta
        if _queued == 0:
            _queued_cond.notify_all()


def _pipelined(
    job: Job,
    adapters: Adapters | None,
    loop: asyncio.AbstractEventLoop | None,
    done: Future[bool],
) -> None:
    _count_queued(-1)
    token = job["fire_claim"]["token"]
    try:
        ran = _start_and_run(job)
    except BaseException as exc:  # noqa: B036 - recorded by _start_and_run; handed to waiters
        _keeper.release(token)
        done.set_exception(exc)
        return
    if ran.result.straggler is not None and ran.result.straggler.alive():
        # Still held (since dispatch) while it runs on; released when it ends.
        _stragglers.park(ran, adapters, loop, done)
        return
    _keeper.release(token)
    _settle_straggler(ran, 0)
    if ran.live is not None and ran.live.fenced:
        try:
            done.set_result(_finish_fenced(ran, adapters, loop))
        except BaseException as exc:  # noqa: B036 - handed to the waiters
            done.set_exception(exc)
        return
    _completer.submit(ran, adapters, loop, done)


# -- the one fire path -------------------------------------------------------------


@dataclass
class Fired:
    """What :func:`fire_job` did: the claim's outcome and, if this caller won it, the job.

    ``job`` is None when the claim was lost (``outcome.code`` says why) or when
    the job vanished or was re-claimed between the claim and the run
    (``removed``: the claim was released and its ledger row closed ``skipped``).
    """

    outcome: Any  # cron.claim.ClaimOutcome
    job: Job | None = None
    removed: bool = False

    @property
    def token(self) -> str | None:
        return self.outcome.token if self.job is not None else None


REMOVED_BEFORE_RUN = "job removed before it could run"


def release_claim(job_id: str, token: str, reason: str) -> None:
    """A claim won but not run: clear it (fenced by the token) and close its ledger row."""
    try:
        jobs.mark_job_run(job_id, token, success=False, error=reason, status="skipped")
    except Exception:
        log.exception("could not release the claim %s of job %s", token, job_id)
    try:
        executions.finish(token, status="skipped", error=reason)
    except Exception:
        log.exception("could not close the ledger row %s of job %s", token, job_id)


def fire_job(
    job_id: str,
    *,
    source: str,
    scheduled_at: datetime | str | None = None,
    now: datetime | None = None,
    force: bool = False,
) -> Fired:
    """Claim ``job_id`` and re-read it: the first half of every fire from outside a tick.

    ``CronScheduler.fire_due``, ``cronkit run`` / ``fire`` and the webhook all
    start here, then run ``fired.job`` (inline with :func:`run_one_job`, or on
    the pool with :func:`dispatch`). A lost claim changes nothing; a won claim
    whose job is gone by the re-read is released, never run.
    """
    outcome = jobs.claim_job_for_fire_ex(
        job_id, scheduled_at=scheduled_at, now=now, force=force, source=source
    )
    token = outcome.token
    if token is None:
        return Fired(outcome)
    job = jobs.get_job(job_id)
    if job is None or (job.get("fire_claim") or {}).get("token") != token:
        release_claim(job_id, token, REMOVED_BEFORE_RUN)
        return Fired(outcome, removed=True)
    return Fired(outcome, job)
