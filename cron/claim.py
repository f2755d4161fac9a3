"""The at-most-once rules, as pure functions over one job dict.

Nothing here does I/O: a store backend calls these inside its exclusive
read-modify-write, and the caller writes the returned ledger events after the
store write. Keeping the rules pure is what lets every backend share them —
and lets the property suites drive them without a file system.

Times are aware UTC datetimes; job fields hold ISO-8601 text (``to_iso``).
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cron.errors import ScheduleError
from cron.model import JobDoc, JobState, RunStatus, parse_optional_ts
from cron.model import is_active as is_active
from cron.schedule import GRACE_MIN, grace_seconds, iter_slots, next_slot, to_iso

# The rules run inside every store's read-modify-write on the document it read: typed as
# the store's raw document until the stores take cron.model.Job (see cron.model).
Job = JobDoc
parse_ts = parse_optional_ts

ONE_SHOT_GRACE = 120.0
MISSED_ROWS_LIMIT = 100


@dataclass(frozen=True)
class LedgerEvent:
    """A ledger row the caller must write after the store write succeeds."""

    job_id: str
    status: str  # missed | skipped
    scheduled_at: str
    error: str
    job_name: str | None = None


class ClaimReason(enum.Enum):
    """Why a claim (or a tick's look at a job) ended as it did. Callers branch on this,
    never on the human-readable ``ClaimOutcome.reason`` text."""

    CLAIMED = "claimed"
    FORCED = "claimed (forced)"
    NO_SUCH_JOB = "no such job"
    COMPLETED = "completed"
    PAUSED = "paused"
    LIVE_CLAIM = "live claim"
    NO_NEXT_RUN = "no next run"
    NOT_DUE = "not due"
    STALE_SLOT = "stale slot"
    FUTURE_SLOT = "future slot"
    MISSED = "missed"
    SKIPPED = "skipped (overlap)"
    EXPIRED_FINAL = "completed after an expired final claim"
    NOT_SCHEDULED = "not scheduled"


@dataclass
class ClaimOutcome:
    token: str | None
    reason: str
    scheduled_at: str | None = None
    events: list[LedgerEvent] = field(default_factory=list)
    code: ClaimReason = ClaimReason.CLAIMED

    @property
    def won(self) -> bool:
        return self.token is not None


def _lost(
    code: ClaimReason,
    reason: str,
    scheduled_at: str | None = None,
    events: list[LedgerEvent] | None = None,
) -> ClaimOutcome:
    return ClaimOutcome(None, reason, scheduled_at, events or [], code)


def claim_is_live(job: Job, now: datetime, ttl: float) -> bool:
    """A claim is live while its age is in ``[0, ttl)``.

    A claim dated in the future is stale: it can only come from a skewed
    clock, and trusting it would block the job until that clock catches up.
    """
    claim = job.get("fire_claim")
    if not claim:
        return False
    at = parse_ts(claim.get("at"))
    if at is None:
        return False
    age = (now - at).total_seconds()
    return 0 <= age < ttl


def is_spent(job: Job) -> bool:
    """True once ``repeat.completed`` has reached ``repeat.times``."""
    rep = job.get("repeat") or {}
    times = rep.get("times")
    return times is not None and int(rep.get("completed", 0)) >= int(times)


def wake_time(job: Job, claim_ttl: float) -> datetime | None:
    """When a tick must next look at ``job``: what every store indexes.

    ``next_run_at`` for an active job — or, for one with no next run that
    still holds a claim (a spent job whose final run may have crashed), the
    instant that claim goes stale: the tick that finds it stale completes the
    job. None for a job no tick needs to see.
    """
    if not is_active(job):
        return None
    due = parse_ts(job.get("next_run_at"))
    if due is not None:
        return due
    claim = job.get("fire_claim")
    if claim:
        at = parse_ts(claim.get("at"))
        if at is not None:
            return at + timedelta(seconds=claim_ttl)
    return None


def catch_up_policy(job: Job, default: str) -> str:
    policy = job.get("catch_up")
    return policy if policy in ("once", "skip") else default


def _advance(job: Job, *, anchor: datetime, now: datetime) -> None:
    """Move ``next_run_at`` to the first slot strictly after ``now``."""
    if is_spent(job):
        job["next_run_at"] = None
        return
    try:
        nxt = next_slot(job["schedule"], slot=anchor, now=now)
    except ScheduleError as exc:
        # A stored schedule that can no longer produce a slot (e.g. read under a newer
        # day rule) stops this job, visibly — never the tick, which serves every job.
        job["state"] = JobState.ERROR
        job["next_run_at"] = None
        job["last_status"] = RunStatus.ERROR
        job["last_error"] = f"the schedule produces no further slot: {exc}"
        return
    job["next_run_at"] = to_iso(nxt) if nxt is not None else None


def _stamp(job: Job, *, slot: datetime, now: datetime, owner: str, advance: bool) -> str:
    """Take the claim: the token, the fired slot, the repeat count, the advance."""
    token = secrets.token_hex(16)  # 32 hex digits, like a uuid4 without building one
    job["fire_claim"] = {
        "token": token,
        "at": to_iso(now),
        "by": owner,
        "scheduled_at": to_iso(slot),
    }
    job["last_scheduled_at"] = to_iso(slot)
    rep = job.setdefault("repeat", {"times": None, "completed": 0})
    rep["completed"] = int(rep.get("completed", 0)) + 1
    if advance:
        _advance(job, anchor=slot, now=now)
    return token


def _missed_between(job: Job, start: datetime, end: datetime, reason: str) -> list[LedgerEvent]:
    """Ledger rows for the slots in ``[start, end)`` that a claim passed over."""
    slots = iter_slots(job["schedule"], start=start, end=end, limit=MISSED_ROWS_LIMIT + 1)
    slots = [s for s in slots if s < end]
    return [
        LedgerEvent(job["id"], RunStatus.MISSED, to_iso(s), reason, job.get("name"))
        for s in slots[:MISSED_ROWS_LIMIT]
    ]


class _Late(enum.Enum):
    ON_TIME = "on time"
    ONE_SHOT_MISSED = "one-shot missed"
    BEYOND_GRACE_SKIP = "beyond grace, catch_up=skip"


def _lateness(
    job: Job, slot: datetime, now: datetime, catch_up_default: str
) -> tuple[_Late, float]:
    """The one place that decides whether a due slot may still fire (and how late it is).

    A one-shot more than ``ONE_SHOT_GRACE`` late is missed; a recurring slot
    later than its grace is missed only under ``catch_up: skip`` (``once``
    fires it once now). Grace is never under ``GRACE_MIN``, so an on-time fire
    never computes it.
    """
    late = (now - slot).total_seconds()
    if job["schedule"].get("kind") == "once":
        return (_Late.ONE_SHOT_MISSED if late > ONE_SHOT_GRACE else _Late.ON_TIME), late
    if (
        late > GRACE_MIN
        and late > grace_seconds(job["schedule"], now=slot)
        and catch_up_policy(job, catch_up_default) == "skip"
    ):
        return _Late.BEYOND_GRACE_SKIP, late
    return _Late.ON_TIME, late


def try_claim(
    job: Job | None,
    *,
    now: datetime,
    claim_ttl: float,
    catch_up_default: str,
    owner: str,
    scheduled_at: datetime | None = None,
    force: bool = False,
) -> ClaimOutcome:
    """The compare-and-set of ``claim_job_for_fire``, applied to one job in place.

    The job dict is modified only when the claim is won; a lost claim returns
    a reason and leaves it byte-for-byte unchanged. See
    :func:`cron.jobs.claim_job_for_fire` for the full contract.
    """
    if job is None:
        return _lost(ClaimReason.NO_SUCH_JOB, "no such job")
    if job.get("state") == JobState.COMPLETED:
        return _lost(ClaimReason.COMPLETED, "job is completed")
    paused = not job.get("enabled", True) or job.get("state") == JobState.PAUSED
    if paused and not force:
        return _lost(ClaimReason.PAUSED, "job is paused")
    if claim_is_live(job, now, claim_ttl):
        return _lost(ClaimReason.LIVE_CLAIM, "a run of this job is still in progress (live claim)")
    due = parse_ts(job.get("next_run_at"))

    if force:
        slot = scheduled_at if scheduled_at is not None else now
        # A forced run consumes the due slot only if one is due.
        advance = due is not None and due <= now
        token = _stamp(job, slot=slot, now=now, owner=owner, advance=advance)
        if is_spent(job):
            job["next_run_at"] = None
        return ClaimOutcome(token, "claimed (forced)", to_iso(slot), code=ClaimReason.FORCED)

    if due is None:
        return _lost(ClaimReason.NO_NEXT_RUN, "job has no next run")
    if due > now:
        return _lost(ClaimReason.NOT_DUE, f"not due until {to_iso(due)}")
    if scheduled_at is not None:
        if scheduled_at < due:
            return _lost(
                ClaimReason.STALE_SLOT,
                f"slot {to_iso(scheduled_at)} already fired or superseded "
                f"(next slot is {to_iso(due)})",
            )
        if scheduled_at > now:
            return _lost(ClaimReason.FUTURE_SLOT, f"slot {to_iso(scheduled_at)} is in the future")
    slot = scheduled_at if scheduled_at is not None else due
    verdict, late = _lateness(job, slot, now, catch_up_default)
    if verdict is _Late.ONE_SHOT_MISSED:
        return _lost(
            ClaimReason.MISSED, f"one-shot is {late:.0f}s late (> {ONE_SHOT_GRACE:.0f}s): missed"
        )
    if verdict is _Late.BEYOND_GRACE_SKIP:
        return _lost(ClaimReason.MISSED, f"slot is {late:.0f}s late, beyond grace (catch_up=skip)")
    events: list[LedgerEvent] = []
    if slot > due:
        events = _missed_between(job, due, slot, f"passed over by a fire of {to_iso(slot)}")
    token = _stamp(job, slot=slot, now=now, owner=owner, advance=True)
    return ClaimOutcome(token, "claimed", to_iso(slot), events)


def sweep_due(
    job: Job,
    *,
    now: datetime,
    claim_ttl: float,
    catch_up_default: str,
    owner: str,
) -> ClaimOutcome:
    """What a tick does with one job at ``now``: fire, skip, miss, or leave it.

    - not firing (paused/completed) or not due → nothing.
    - a spent job whose run crashed (stale claim, no next run) → ``completed``.
    - a due job whose previous run still holds a live claim → slot ``skipped``
      (overlap), ``next_run_at`` moves past it; no second copy starts.
    - a one-shot more than 120 s late → ``completed``, ``last_status: missed``.
    - a recurring job later than its grace → ``catch_up`` ``once`` fires once
      now, ``skip`` records ``missed``; either way no burst.
    - otherwise → claimed for its slot.
    """
    if not is_active(job):
        return _lost(ClaimReason.NOT_SCHEDULED, "not scheduled")
    due = parse_ts(job.get("next_run_at"))
    if due is None:
        if job.get("fire_claim") and is_spent(job) and not claim_is_live(job, now, claim_ttl):
            job["fire_claim"] = None
            job["state"] = JobState.COMPLETED
            job["last_status"] = RunStatus.INTERRUPTED
            job["last_error"] = "the final run's owner never reported back (claim expired)"
            return _lost(ClaimReason.EXPIRED_FINAL, "completed after an expired final claim")
        return _lost(ClaimReason.NO_NEXT_RUN, "no next run")
    if due > now:
        return _lost(ClaimReason.NOT_DUE, "not due")
    job_id = job["id"]
    if claim_is_live(job, now, claim_ttl):
        job["last_status"] = RunStatus.SKIPPED
        _advance(job, anchor=due, now=now)  # a one-shot has no slot after its own: None
        ev = LedgerEvent(
            job_id,
            RunStatus.SKIPPED,
            to_iso(due),
            "previous run still running (overlap)",
            job.get("name"),
        )
        return _lost(ClaimReason.SKIPPED, "overlap: skipped", to_iso(due), [ev])
    verdict, late = _lateness(job, due, now, catch_up_default)
    if verdict is _Late.ONE_SHOT_MISSED:
        job["state"] = JobState.COMPLETED
        job["next_run_at"] = None
        job["last_status"] = RunStatus.MISSED
        job["last_error"] = f"one-shot was {late:.0f}s late (> {ONE_SHOT_GRACE:.0f}s)"
        ev = LedgerEvent(job_id, RunStatus.MISSED, to_iso(due), job["last_error"], job.get("name"))
        return _lost(ClaimReason.MISSED, "one-shot missed", to_iso(due), [ev])
    if verdict is _Late.BEYOND_GRACE_SKIP:
        job["last_status"] = RunStatus.MISSED
        _advance(job, anchor=due, now=now)
        ev = LedgerEvent(
            job_id,
            RunStatus.MISSED,
            to_iso(due),
            f"{late:.0f}s late, beyond grace; catch_up=skip",
            job.get("name"),
        )
        return _lost(ClaimReason.MISSED, "missed (catch_up=skip)", to_iso(due), [ev])
    token = _stamp(job, slot=due, now=now, owner=owner, advance=True)
    return ClaimOutcome(token, "claimed", to_iso(due))


def apply_run_result(
    job: Job, token: str, *, now: datetime, status: str, error: str | None
) -> bool:
    """``mark_job_run``'s compare: only the live claim's owner may record a result."""
    claim = job.get("fire_claim")
    if not claim or claim.get("token") != token:
        return False
    job["fire_claim"] = None
    job["last_run_at"] = to_iso(now)
    job["last_status"] = status
    ok = status == RunStatus.OK
    job["last_error"] = None if ok else (error or status)
    job["failure_streak"] = 0 if ok else int(job.get("failure_streak") or 0) + 1
    if job.get("next_run_at") is None and is_spent(job):
        job["state"] = JobState.COMPLETED
    return True


def refresh(job: Job, token: str, *, now: datetime) -> bool:
    """Re-date a live claim so a long run is not mistaken for a crashed one."""
    claim = job.get("fire_claim")
    if not claim or claim.get("token") != token:
        return False
    claim["at"] = to_iso(now)
    return True


class RetryClaim(enum.Enum):
    """Whether a held claim may pass to the next attempt at its slot (SPEC §13)."""

    GRANTED = "granted"
    LOST = "claim lost"
    PAUSED = "job paused"
    PAST_NEXT_SLOT = "past the next slot"


def retry_claim(
    job: Job | None, token: str, *, now: datetime, start_at: datetime, attempt: int
) -> tuple[RetryClaim, str | None]:
    """Hand the claim ``token`` holds to attempt ``attempt`` of the same slot, in place.

    The claim is never released in between, so no other run of the job can
    start during the backoff (a tick meanwhile records the slot it finds due
    ``skipped``). The attempt gets a fresh token — its ledger row's id, as for
    every fired run — so a result or a refresh from the attempt before it is
    fenced out. Refused (the job unchanged) when ``token`` no longer holds the
    live claim, the job was paused or stopped, or ``start_at`` is not before
    the job's next slot: that slot must fire normally.
    """
    if job is None:
        return RetryClaim.LOST, None
    claim = job.get("fire_claim")
    if not claim or claim.get("token") != token:
        return RetryClaim.LOST, None
    if job.get("state") == JobState.PAUSED or not job.get("enabled", True):
        return RetryClaim.PAUSED, None
    nxt = parse_ts(job.get("next_run_at"))
    if nxt is not None and start_at >= nxt:
        return RetryClaim.PAST_NEXT_SLOT, None
    new = secrets.token_hex(16)
    job["fire_claim"] = {
        **claim,
        "token": new,
        "at": to_iso(now),
        "attempt": attempt,
        "retry_at": to_iso(start_at),
    }
    return RetryClaim.GRANTED, new


def may_start_retry(job: Job | None, token: str, *, now: datetime) -> RetryClaim:
    """At the end of a backoff: may the waiting attempt holding ``token`` start ``now``?"""
    if job is None:
        return RetryClaim.LOST
    claim = job.get("fire_claim")
    if not claim or claim.get("token") != token:
        return RetryClaim.LOST
    if job.get("state") == JobState.PAUSED or not job.get("enabled", True):
        return RetryClaim.PAUSED
    nxt = parse_ts(job.get("next_run_at"))
    if nxt is not None and now >= nxt:
        return RetryClaim.PAST_NEXT_SLOT
    return RetryClaim.GRANTED
