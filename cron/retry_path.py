"""Retries of a failed attempt (SPEC §13): planning the next attempt, and its backoff.

A failed attempt whose policy allows another hands its claim on
(:func:`plan_retry`); the next attempt waits through its backoff holding the
claim (:func:`wait_for_retry`), then runs like any run.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import datetime

from cron import executions, jobs, metrics
from cron import retry as retries
from cron.claim import RetryClaim, parse_ts
from cron.config import cfg_get, read_config
from cron.live_runs import LiveRuns, Ran
from cron.runners import RunResult
from cron.store import Job

log = logging.getLogger(__name__)


@dataclass
class Retry:
    """A failed attempt whose slot runs again: the job carries the claim, handed on."""

    job: Job
    token: str
    attempt: int
    start_at: datetime
    status: str
    """The failed attempt's outcome: what the slot records if the retry never starts."""
    error: str | None


def with_note(result: RunResult, note: str) -> RunResult:
    return replace(result, error=f"{result.error or result.status}; {note}")


def plan_retry(ran: Ran, timing: retries.RetryTiming) -> Retry | None:
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
    now = timing.clock.now()
    try:
        current = jobs.get_job(job_id)
    except Exception:
        log.exception("job %s: could not read it to plan a retry; the slot ends here", job_id)
        return None
    next_slot = parse_ts((current or {}).get("next_run_at"))
    plan = retries.plan_retry(
        status=result.status,
        attempt=attempt,
        policy=policy,
        now=now,
        next_slot=next_slot,
        rng=timing.rng,
    )
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
            log.info(
                "job %s (%s): attempt %d %s; retry %d of %d in %.1fs",
                job_id,
                ran.job.get("name"),
                attempt,
                result.status,
                attempt,
                policy.max,
                plan.delay,
            )
            ran.result = with_note(result, plan.note)
            return Retry(job, token, plan.attempt, plan.at, result.status, result.error)
        notes = {
            RetryClaim.PAST_NEXT_SLOT: f"retry {attempt} of {policy.max} not run: it would "
            f"start at {plan.at.isoformat()}, not before the next slot",
            RetryClaim.PAUSED: f"retry {attempt} of {policy.max} not run: the job is paused",
            RetryClaim.LOST: f"retry {attempt} of {policy.max} not run: the claim is gone",
        }
        ran.result = with_note(result, notes.get(verdict, "not retried"))
        return None
    if plan.note:
        ran.result = with_note(result, plan.note)
    return None


def wait_for_retry(r: Retry, live: LiveRuns, timing: retries.RetryTiming) -> Job | None:
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
    clock = timing.clock
    try:
        while not live.stopping():
            remaining = (r.start_at - clock.now()).total_seconds()
            if remaining <= 0:
                break
            clock.sleep(min(remaining, step), live.wake)
            if live.stopping():
                break
            try:
                if not jobs.refresh_claim(job_id, r.token, now=clock.now()):
                    break  # the claim is gone: may_start says so below
            except Exception:
                log.warning(
                    "job %s: could not refresh its claim during a backoff", job_id, exc_info=True
                )
    except BaseException as exc:
        # Ctrl-C in a synchronous `cronkit run`: the slot ends here, its claim released.
        note = f"retry {r.attempt - 1} not run: {type(exc).__name__} during its backoff"
        with contextlib.suppress(Exception):
            jobs.mark_job_run(
                job_id,
                r.token,
                success=False,
                status=r.status,
                error=f"{r.error or r.status}; {note}",
            )
        with contextlib.suppress(Exception):
            executions.finish(r.token, status="interrupted", error=note)
        live.remove(r.token)
        raise
    now = clock.now()
    if live.stopping():
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
        jobs.mark_job_run(
            job_id,
            r.token,
            success=False,
            status=r.status,
            error=f"{r.error or r.status}; {note}",
            now=now,
        )
    finally:
        with contextlib.suppress(Exception):
            executions.finish(r.token, status=status, error=note)
        live.remove(r.token)
    log.info("job %s: %s", job_id, note)
    return None


__all__ = ["Retry", "plan_retry", "wait_for_retry", "with_note"]
