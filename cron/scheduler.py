"""The tick and the run: what firing a job *means*, shared by every trigger provider.

``tick`` decides nothing itself: the store's batch claim picks the due jobs,
and ``run_one_job`` runs one claimed job end to end (ledger, runner, output
file, delivery, ``mark_job_run``). Providers call these; they never
reimplement them.

These are the SPEC's module functions; each acts on the process's default
runtime (:func:`cron.runtime.default_runtime`, created on first use), which
holds the pool, the claim keeper and the live runs. An owner that needs a
runtime of its own (another home or store in the same process) makes a
:class:`cron.runtime.Runtime` and calls its methods instead — see
:mod:`cron.runtime` for why the functions do not follow "the running ticker".
This module keeps no state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cron import executions, jobs, procgroup
from cron import retry as retries
from cron.claim_keeper import ClaimKeeper
from cron.live_runs import LiveRun
from cron.run_path import Adapters
from cron.runtime import Runtime, default_runtime
from cron.store import Job, get_store
from cron.stores import Replay

log = logging.getLogger(__name__)


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
    return default_runtime().tick(
        now=now, sync=sync, verbose=verbose, adapters=adapters, loop=loop, can_dispatch=can_dispatch
    )


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
    return default_runtime().dispatch(
        claimed, adapters=adapters, loop=loop, verbose=verbose, claimed_since=claimed_since
    )


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
    when its work does. A failed attempt with retries left waits through its
    backoff in this thread.
    """
    return default_runtime().run_one_job(job, adapters=adapters, loop=loop)


def running_jobs() -> int:
    """How many dispatched jobs have not finished yet (in this process)."""
    return default_runtime().running_jobs()


def wait_for_running(timeout: float | None) -> bool:
    """Wait for this process's dispatched jobs; True if all finished in time."""
    return default_runtime().wait_for_running(timeout)


def live_runs() -> list[LiveRun]:
    """The runs this process has started whose results are not recorded yet."""
    return default_runtime().live_runs()


def claim_keeper() -> ClaimKeeper:
    """The claim keeper of this process's runs (its ``rounds`` count refresh writes)."""
    return default_runtime().keeper


def interrupt_running(*, term_grace: float = procgroup.TERM_GRACE) -> int:
    """End this process's running jobs (the gateway's shutdown, after its grace).

    No further command starts here. Each running command's process group gets
    SIGTERM, and SIGKILL ``term_grace`` seconds later if any of it is still
    alive; those runs are recorded ``interrupted``. A python callable cannot
    be stopped: it stays live (see :func:`abandon_running`). Returns how many
    process groups were signalled.
    """
    return default_runtime().interrupt_running(term_grace=term_grace)


def allow_starts() -> None:
    """Undo :func:`interrupt_running`'s ban on new starts (a gateway stopped in-process)."""
    default_runtime().allow_starts()


def abandon_running(reason: str) -> int:
    """Record every run still live here as ended because this process exits now.

    For the runs nothing could stop (a python callable past its timeout, or
    one still inside its grace): the process is about to exit, which ends
    them, so their rows are closed (``timeout`` for a run already past its
    timeout, else ``interrupted``) and their claims released. Returns how many.
    """
    return default_runtime().abandon_running(reason)


def retry_timing() -> retries.RetryTiming:
    """The clock and random source retries wait on (see :func:`set_retry_timing`)."""
    return default_runtime().timing


def set_retry_timing(timing: retries.RetryTiming | None) -> retries.RetryTiming:
    """Make retries wait on ``timing`` (None: the wall clock); returns the one replaced.

    The seam for tests and simulations: with a :class:`cron.retry.FakeClock` a
    backoff passes at once, in the clock's time, and claims are refreshed in it.
    """
    rt = default_runtime()
    previous = rt.timing
    rt.timing = timing if timing is not None else retries.RetryTiming()
    return previous


# -- settling runs whose owner died ------------------------------------------------


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


# -- the one fire path -------------------------------------------------------------


@dataclass
class Fired:
    """What :func:`fire_job` did: the claim's outcome and, if this caller won it, the job.

    ``job`` is None when the claim was lost (``outcome.code`` says why), when
    the job vanished or was re-claimed between the claim and the run
    (``removed``: the claim was released and its ledger row closed ``skipped``),
    or when a signed request was a replay (``replayed``: ``outcome`` is None and
    nothing changed).
    """

    outcome: Any  # cron.claim.ClaimOutcome, None for a replayed request
    job: Job | None = None
    removed: bool = False
    replayed: bool = False

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
    replay: Replay | None = None,
) -> Fired:
    """Claim ``job_id`` and re-read it: the first half of every fire from outside a tick.

    ``CronScheduler.fire_due``, ``cronkit run`` / ``fire`` and the webhook all
    start here, then run ``fired.job`` (inline with :func:`run_one_job`, or on
    the pool with :func:`dispatch`). A lost claim changes nothing; a won claim
    whose job is gone by the re-read is released, never run. With ``replay``
    (a signed webhook request) the claim is :func:`cron.jobs.claim_signed_fire`:
    the replay record and the claim are one store write, and a replayed request
    returns ``Fired(None, replayed=True)`` having changed nothing.
    """
    if replay is not None:
        if force:
            raise ValueError("fire_job: a signed request (replay=) cannot be a forced run")
        signed = jobs.claim_signed_fire(
            job_id, replay, scheduled_at=scheduled_at, now=now, source=source
        )
        if signed is None:
            return Fired(None, replayed=True)
        outcome = signed
    else:
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


__all__ = [
    "REMOVED_BEFORE_RUN",
    "Fired",
    "LiveRun",
    "Runtime",
    "abandon_running",
    "allow_starts",
    "claim_keeper",
    "default_runtime",
    "dispatch",
    "fire_job",
    "interrupt_running",
    "live_runs",
    "recover_interrupted",
    "release_claim",
    "retry_timing",
    "run_one_job",
    "running_jobs",
    "set_retry_timing",
    "tick",
    "wait_for_running",
]
