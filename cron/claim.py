"""The at-most-once rules, as pure functions over one job dict.

Nothing here does I/O: a store backend calls these inside its exclusive
read-modify-write, and the caller writes the returned ledger events after the
store write. Keeping the rules pure is what lets every backend share them —
and lets the property suites drive them without a file system.

Times are aware UTC datetimes; job fields hold ISO-8601 text (``to_iso``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cron.schedule import GRACE_MIN, grace_seconds, iter_slots, next_slot, to_iso

Job = dict[str, Any]

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


@dataclass
class ClaimOutcome:
    token: str | None
    reason: str
    scheduled_at: str | None = None
    events: list[LedgerEvent] = field(default_factory=list)

    @property
    def won(self) -> bool:
        return self.token is not None


def parse_ts(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


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


def catch_up_policy(job: Job, default: str) -> str:
    policy = job.get("catch_up")
    return policy if policy in ("once", "skip") else default


def _zone(job: Job) -> str | None:
    tz = (job.get("schedule") or {}).get("tz")
    return tz if isinstance(tz, str) and tz else None


def _advance(job: Job, *, anchor: datetime, now: datetime) -> None:
    """Move ``next_run_at`` to the first slot strictly after ``now``."""
    if is_spent(job):
        job["next_run_at"] = None
        return
    nxt = next_slot(job["schedule"], slot=anchor, now=now, tz=_zone(job))
    job["next_run_at"] = to_iso(nxt) if nxt is not None else None


def _stamp(job: Job, *, slot: datetime, now: datetime, owner: str, advance: bool) -> str:
    """Take the claim: the token, the fired slot, the repeat count, the advance."""
    token = uuid.uuid4().hex
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
    slots = iter_slots(
        job["schedule"], start=start, end=end, tz=_zone(job), limit=MISSED_ROWS_LIMIT + 1
    )
    slots = [s for s in slots if s < end]
    return [
        LedgerEvent(job["id"], "missed", to_iso(s), reason, job.get("name"))
        for s in slots[:MISSED_ROWS_LIMIT]
    ]


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
        return ClaimOutcome(None, "no such job")
    if job.get("state") == "completed":
        return ClaimOutcome(None, "job is completed")
    paused = not job.get("enabled", True) or job.get("state") == "paused"
    if paused and not force:
        return ClaimOutcome(None, "job is paused")
    if claim_is_live(job, now, claim_ttl):
        return ClaimOutcome(None, "a run of this job is still in progress (live claim)")
    due = parse_ts(job.get("next_run_at"))

    if force:
        slot = scheduled_at if scheduled_at is not None else now
        # A forced run consumes the due slot only if one is due.
        advance = due is not None and due <= now
        token = _stamp(job, slot=slot, now=now, owner=owner, advance=advance)
        if is_spent(job):
            job["next_run_at"] = None
        return ClaimOutcome(token, "claimed (forced)", to_iso(slot))

    if due is None:
        return ClaimOutcome(None, "job has no next run")
    if due > now:
        return ClaimOutcome(None, f"not due until {to_iso(due)}")
    if scheduled_at is not None:
        if scheduled_at < due:
            return ClaimOutcome(
                None,
                f"slot {to_iso(scheduled_at)} already fired or superseded "
                f"(next slot is {to_iso(due)})",
            )
        if scheduled_at > now:
            return ClaimOutcome(None, f"slot {to_iso(scheduled_at)} is in the future")
    slot = scheduled_at if scheduled_at is not None else due
    late = (now - slot).total_seconds()
    kind = job["schedule"].get("kind")
    if kind == "once" and late > ONE_SHOT_GRACE:
        return ClaimOutcome(None, f"one-shot is {late:.0f}s late (> {ONE_SHOT_GRACE:.0f}s): missed")
    # Grace is never under GRACE_MIN: on-time fires skip computing it.
    if (
        kind != "once"
        and late > GRACE_MIN
        and late > grace_seconds(job["schedule"], now=slot, tz=_zone(job))
    ):
        if catch_up_policy(job, catch_up_default) == "skip":
            return ClaimOutcome(None, f"slot is {late:.0f}s late, beyond grace (catch_up=skip)")
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
    if not job.get("enabled", True) or job.get("state") != "scheduled":
        return ClaimOutcome(None, "not scheduled")
    due = parse_ts(job.get("next_run_at"))
    if due is None:
        if job.get("fire_claim") and is_spent(job) and not claim_is_live(job, now, claim_ttl):
            job["fire_claim"] = None
            job["state"] = "completed"
            job["last_status"] = "interrupted"
            job["last_error"] = "the final run's owner never reported back (claim expired)"
            return ClaimOutcome(None, "completed after an expired final claim")
        return ClaimOutcome(None, "no next run")
    if due > now:
        return ClaimOutcome(None, "not due")
    job_id = job["id"]
    if claim_is_live(job, now, claim_ttl):
        job["last_status"] = "skipped"
        _advance(job, anchor=due, now=now)
        if job["schedule"].get("kind") == "once":
            job["next_run_at"] = None
        ev = LedgerEvent(
            job_id, "skipped", to_iso(due), "previous run still running (overlap)", job.get("name")
        )
        return ClaimOutcome(None, "overlap: skipped", to_iso(due), [ev])
    late = (now - due).total_seconds()
    if job["schedule"].get("kind") == "once":
        if late > ONE_SHOT_GRACE:
            job["state"] = "completed"
            job["next_run_at"] = None
            job["last_status"] = "missed"
            job["last_error"] = f"one-shot was {late:.0f}s late (> {ONE_SHOT_GRACE:.0f}s)"
            ev = LedgerEvent(job_id, "missed", to_iso(due), job["last_error"], job.get("name"))
            return ClaimOutcome(None, "one-shot missed", to_iso(due), [ev])
    elif late > GRACE_MIN and late > grace_seconds(job["schedule"], now=due, tz=_zone(job)):
        if catch_up_policy(job, catch_up_default) == "skip":
            job["last_status"] = "missed"
            _advance(job, anchor=due, now=now)
            ev = LedgerEvent(
                job_id,
                "missed",
                to_iso(due),
                f"{late:.0f}s late, beyond grace; catch_up=skip",
                job.get("name"),
            )
            return ClaimOutcome(None, "missed (catch_up=skip)", to_iso(due), [ev])
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
    ok = status == "ok"
    job["last_error"] = None if ok else (error or status)
    job["failure_streak"] = 0 if ok else int(job.get("failure_streak") or 0) + 1
    if job.get("next_run_at") is None and is_spent(job):
        job["state"] = "completed"
    return True


def refresh(job: Job, token: str, *, now: datetime) -> bool:
    """Re-date a live claim so a long run is not mistaken for a crashed one."""
    claim = job.get("fire_claim")
    if not claim or claim.get("token") != token:
        return False
    claim["at"] = to_iso(now)
    return True
