"""One run, start to record: the fire path every trigger shares (SPEC §4).

:func:`start_and_run` opens the ledger row, runs the action through its
runner with the claim kept live, and returns a :class:`cron.live_runs.Ran`;
:func:`finish_runs` writes the output files, delivers, and records a batch
of results in one store write and one ledger write (a fenced run:
:func:`finish_fenced`). The runtime (``cron.runtime``) decides where each
stage runs; nothing here holds state.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from cron import executions, jobs, metrics, runners
from cron import retry as retries
from cron.claim import parse_ts
from cron.claim_keeper import ClaimKeeper
from cron.config import cfg_get, read_config
from cron.live_runs import LiveRun, LiveRuns, Ran
from cron.output import LiveOutput, open_output, write_output
from cron.retry_path import Retry, plan_retry
from cron.run_types import StartCall
from cron.runners import RunContext, RunResult, run_action
from cron.store import Job

log = logging.getLogger(__name__)

Adapters = Mapping[str, Callable[..., Any]]


def deliver(
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


def start_and_run(
    job: Job,
    live_runs: LiveRuns,
    keeper: ClaimKeeper,
    start_call: StartCall | None = None,
    started: Callable[[], None] | None = None,
) -> Ran:
    """Stage 1: ledger row ``running``, run the action (claim kept alive meanwhile).

    ``start_call`` is where a runner starts a thread of its own (``RunContext.start_call``).
    ``started`` is called once the start's bookkeeping is written, right before the
    action runs (not called if that bookkeeping raised).

    A ``BaseException`` from the runner is recorded — ledger
    ``interrupted``/``error``, claim released — before it propagates. A run
    interrupted by :meth:`cron.live_runs.LiveRuns.interrupt` is recorded ``interrupted``
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
        source = (
            executions.start_run(
                token,
                job_id=job_id,
                scheduled_at=scheduled_at,
                output_path=out.path if out is not None else None,
            )
            or "tick"
        )
    except BaseException:
        if out is not None:
            out.close()
        raise
    timeout = _timeout_for(job, cfg)
    action = job.get("action")
    kind = str(action.get("kind") or "command") if isinstance(action, dict) else "command"
    live = LiveRun(
        token,
        job_id,
        job.get("name"),
        source,
        scheduled_at,
        time.time(),
        timeout,
        kind=kind,
        fenced=live_runs.fenced_note(token),
    )
    live_runs.add(live)
    metrics.observe_run_start(job_id, scheduled_at, live.started)
    log.info(
        "run start: job %s (%s) slot %s, %s ms late, source %s",
        job_id,
        job.get("name"),
        scheduled_at or "-",
        _lateness_ms(scheduled_at, live.started),
        source,
    )
    ctx = RunContext(
        timeout=timeout,
        scheduled_at=scheduled_at,
        on_spawn=lambda group: live_runs.spawned(token, group),
        output=out,
        start_call=start_call,
    )
    if started is not None:
        started()
    try:
        with keeper.hold(job_id, token, ttl):
            if live.fenced:
                live.interrupted = True
                result = RunResult("interrupted", "", f"cancelled before it started: {live.fenced}")
            elif live_runs.closing:
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
        live_runs.remove(token)
        log_end(job, status, live)
        raise
    if live_runs.acted(live) and live.fenced and live.kind == "command":
        if not (result.error or "").startswith("cancelled before it started: "):
            ended = (
                "cancelled before the command started"
                if result.exit_code is None
                else (result.error or "no error")
            )
            result = RunResult(
                "interrupted", result.output, f"{live.fenced} ({ended})", result.exit_code
            )
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
            "job %s (%s): %s; its claim is kept until it ends",
            job_id,
            job.get("name"),
            result.error,
        )
    return Ran(job, token, result, cfg, live, out)


def log_end(job: Job, status: str, live: LiveRun | None) -> None:
    took = f"{time.time() - live.started:.3f}s" if live is not None else "-"
    metrics.observe_run_end(job["id"], status, time.time() - live.started if live else None)
    log.info("run end: job %s (%s) %s in %s", job["id"], job.get("name"), status, took)


def settle_straggler(ran: Ran, timeout: float | None, keeper: ClaimKeeper) -> bool:
    """Wait for a runaway run to really end, keeping its claim; True once it has.

    Its result then replaces the one the runner gave at the timeout.
    """
    straggler = ran.result.straggler
    if straggler is None:
        return True
    ttl = float(cfg_get(ran.cfg, "cron", "claim_ttl", default=300))
    with keeper.hold(ran.job["id"], ran.token, ttl):
        if not straggler.wait(timeout):
            return False
    try:
        ran.result = straggler.final()
    except BaseException as exc:  # noqa: B036 - the work is over either way
        ran.result = RunResult("timeout", "", f"{type(exc).__name__}: {exc}")
    return True


def write_output_of(ran: Ran) -> str | None:
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


def finish_runs(
    runs: list[Ran],
    live: LiveRuns,
    timing: retries.RetryTiming,
    adapters: Adapters | None,
    loop: asyncio.AbstractEventLoop | None,
) -> list[bool | Retry]:
    """Stage 2 for a batch: output files, delivery, one store write, one ledger write.

    A failed attempt whose slot is retried (:func:`cron.retry_path.plan_retry`) is not
    delivered and leaves the job as it is: its claim has passed to the next
    attempt, which is returned in its place.
    """
    outputs = []
    outcomes: list[bool | Retry] = []
    for ran in runs:
        outputs.append(write_output_of(ran))
        again = plan_retry(ran, timing)
        outcomes.append(again if again is not None else ran.result.status == "ok")
        if again is None:
            deliver(ran.job, ran.result, adapters, loop)
    final = [r for r, out in zip(runs, outcomes, strict=True) if not isinstance(out, Retry)]
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
                live.remove(ran.token)
                log_end(ran.job, ran.result.status, ran.live)
                if isinstance(out, Retry):
                    # Waiting counts as live: a stopping scheduler ends the wait.
                    live.add(
                        LiveRun(
                            out.token,
                            out.job["id"],
                            out.job.get("name"),
                            ran.live.source if ran.live else "tick",
                            (out.job.get("fire_claim") or {}).get("scheduled_at"),
                            time.time(),
                            None,
                        )
                    )
    return outcomes


FENCED_RECORD_RETRY = 1.0
"""Seconds between attempts to record a fenced run's result while the store is away."""


def finish_fenced(
    ran: Ran,
    live: LiveRuns,
    adapters: Adapters | None,
    loop: asyncio.AbstractEventLoop | None,
) -> bool:
    """Record a fenced run once the store answers again (it was fenced for not answering).

    The result is applied only if the run's token still holds the claim
    (``mark_job_runs`` fences by token); a claim another node took over
    refuses it, and a ledger row settled ``unknown`` keeps that outcome.
    Gives up when the runtime is stopping. Never retried (SPEC §13: the slot
    may have run elsewhere).
    """
    out = write_output_of(ran)
    deliver(ran.job, ran.result, adapters, loop)
    job_id = ran.job["id"]
    marked = closed = False
    warned = False
    try:
        while not (marked and closed):
            try:
                if not marked:
                    ok = jobs.mark_job_runs(
                        [(job_id, ran.token, ran.result.status, ran.result.error)]
                    )[0]
                    marked = True
                    if not ok:
                        log.warning(
                            "job %s: result not recorded on the job; its claim %s is "
                            "no longer live",
                            job_id,
                            ran.token,
                        )
                if not closed:
                    executions.finish_many([(ran.token, ran.result.status, ran.result.error, out)])
                    closed = True
            except ConnectionError as exc:
                if live.stopping():
                    log.error(
                        "job %s: fenced run %s not recorded (the store is unreachable "
                        "and the scheduler is stopping): %s",
                        job_id,
                        ran.token,
                        exc,
                    )
                    break
                if not warned:
                    log.warning(
                        "job %s: fenced run %s waits for the store to record it: %s",
                        job_id,
                        ran.token,
                        exc,
                    )
                    warned = True
                live.wake.wait(FENCED_RECORD_RETRY)
    finally:
        live.remove(ran.token)
        log_end(ran.job, ran.result.status, ran.live)
    return ran.result.status == "ok"


__all__ = [
    "Adapters",
    "deliver",
    "finish_fenced",
    "finish_runs",
    "log_end",
    "settle_straggler",
    "start_and_run",
    "write_output_of",
]
