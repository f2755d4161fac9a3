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
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from datetime import datetime
from typing import Any

from cron import executions, jobs, paths
from cron.config import cfg_get, load_config
from cron.output import write_output
from cron.runners import RunContext, RunResult, run_action
from cron.store import Job

log = logging.getLogger(__name__)

Adapters = Mapping[str, Callable[..., Any]]

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()
_inflight: set[Future[bool]] = set()
_inflight_lock = threading.Lock()


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


def recover_interrupted(*, now: datetime | None = None) -> int:
    """Settle runs whose owner process provably died: ledger ``unknown``, claim released.

    The ledger row becomes ``unknown`` (never rerun: the run may have had
    effects). The job's claim is released through ``mark_job_run`` with the
    dead run's own token, so it only applies if that claim is still the live
    one — and the next slot need not wait ``claim_ttl`` to be claimable.
    Returns the number of runs settled.
    """
    settled = executions.recover_interrupted_execution_rows(now=now)
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
        claimed = jobs.claim_due_jobs(now)
    if not claimed:
        return 0
    size = int(cfg_get(load_config(), "cron", "max_parallel_jobs", default=4))
    pool = _executor(size)
    futures = []
    for job, _token in claimed:
        if verbose:
            log.info("firing job %s (%s)", job["id"], job.get("name"))
        fut = pool.submit(run_one_job, job, adapters=adapters, loop=loop)
        with _inflight_lock:
            _inflight.add(fut)
        fut.add_done_callback(_log_done)
        futures.append(fut)
    if sync:
        wait_futures(futures)
    return len(claimed)


class _ClaimKeeper:
    """Re-dates a running job's claim every ``claim_ttl / 3`` so it never looks crashed."""

    def __init__(self, job_id: str, token: str, ttl: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(job_id, token, max(ttl / 3, 0.05)),
            name=f"cronkit-claim-{job_id}",
            daemon=True,
        )

    def _run(self, job_id: str, token: str, every: float) -> None:
        while not self._stop.wait(every):
            try:
                if not jobs.refresh_claim(job_id, token):
                    return  # the claim is gone; nothing left to keep alive
            except Exception:
                log.warning("could not refresh the claim of job %s", job_id, exc_info=True)

    def __enter__(self) -> _ClaimKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


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
    before it propagates.
    """
    claim = job.get("fire_claim") or {}
    token = claim.get("token")
    if not token:
        raise ValueError(f"job {job.get('id')!r} carries no claim token; claim it first")
    job_id = job["id"]
    scheduled_at = claim.get("scheduled_at")
    cfg = load_config()
    ttl = float(cfg_get(cfg, "cron", "claim_ttl", default=300))
    executions.mark_running(token, job_id=job_id, scheduled_at=scheduled_at)
    ctx = RunContext(timeout=_timeout_for(job, cfg), scheduled_at=scheduled_at)
    try:
        with _ClaimKeeper(job_id, token, ttl):
            result = run_action(job, ctx)
    except BaseException as exc:
        status = "error" if isinstance(exc, Exception) else "interrupted"
        message = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(Exception):
            jobs.mark_job_run(job_id, token, success=False, error=message, status=status)
        with contextlib.suppress(Exception):
            executions.finish(token, status=status, error=message)
        raise
    output_path = None
    try:
        text = result.output
        if result.error and result.status != "ok":
            text = (
                f"{text}\n[cronkit] {result.status}: {result.error}\n"
                if text
                else (f"[cronkit] {result.status}: {result.error}\n")
            )
        output_path = write_output(
            job_id, text, retention=int(cfg_get(cfg, "cron", "output_retention", default=50))
        )
    except Exception:
        log.exception("job %s: could not write its output file", job_id)
    _deliver(job, result, adapters, loop)
    ok = result.status == "ok"
    try:
        if not jobs.mark_job_run(
            job_id, token, success=ok, error=result.error, status=result.status
        ):
            log.warning(
                "job %s: result not recorded on the job; its claim %s is no longer live",
                job_id,
                token,
            )
    finally:
        # The ledger row is closed even if the store write failed (e.g. a lock
        # timeout): the run happened, and its claim simply expires.
        executions.finish(
            token,
            status=result.status,
            error=result.error,
            output_path=str(output_path) if output_path else None,
        )
    return ok
