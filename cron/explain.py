"""``cronkit explain ID``: why a job did or did not fire, and whether it will (SPEC §14).

:func:`explain_job` gathers everything that decides a job's next fire — its
state, its next slot, a claim held by a run, its last slots in the ledger and
the ticker's verdict — into an :class:`Explanation` without writing anything;
:func:`format_explanation` turns that into plain sentences. The CLI only
resolves the job and prints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from cron.config import cfg_get, load_config
from cron.errors import JobNotFoundError
from cron.fmt import fmt_duration, fmt_offset, fmt_time, to_dt
from cron.model import Job, JobDoc, JobState
from cron.store import get_store

__all__ = ["ClaimInfo", "Explanation", "explain_job", "format_explanation"]

# Ticker states in which nothing fires a due job.
_NOT_FIRING = ("stopped", "stalled", "failing")


@dataclass(frozen=True)
class ClaimInfo:
    """The job's ``fire_claim``, judged at ``now``."""

    token: str | None
    at: str | None
    by: str | None
    scheduled_at: str | None
    age: float | None  # seconds; negative for a claim dated in the future
    live: bool  # age in [0, claim_ttl): no other run of the job may start
    claim_ttl: float
    owner_gone: bool  # its owner process provably no longer runs (this host only)


@dataclass(frozen=True)
class Explanation:
    """Everything ``explain`` says about one job, as data (``to_dict`` is the ``--json``)."""

    id: str
    name: str
    schedule: str
    kind: str  # cron | interval | once
    zone: str
    state: str
    enabled: bool
    will_fire: bool | None  # None: cannot tell (the ticker's state is unknown)
    verdict: str
    next_run_at: str | None
    next_run_local: str | None
    next_run_in: float | None  # seconds from now; negative when overdue
    paused_at: str | None
    paused_reason: str | None
    last_run_at: str | None
    last_status: str | None
    last_error: str | None
    failure_streak: int
    claim: ClaimInfo | None
    recent: list[dict[str, Any]] = field(default_factory=list)
    ticker: dict[str, Any] = field(default_factory=dict)
    now: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _zone_of(job: Job | JobDoc) -> tzinfo:
    from cron.schedule import resolve_zone

    own = (job.get("schedule") or {}).get("tz")
    try:
        return resolve_zone(own if isinstance(own, str) and own else None)
    except ValueError:
        return resolve_zone()


def _zone_name(zone: tzinfo) -> str:
    key = getattr(zone, "key", None)
    return str(key) if key else str(zone)


def _claim_info(job: Job | JobDoc, now: datetime, ttl: float) -> ClaimInfo | None:
    claim = job.get("fire_claim")
    if not isinstance(claim, dict):
        return None
    from cron.procinfo import owner_gone

    at = to_dt(claim.get("at"))
    age = None if at is None else (now - at).total_seconds()
    by = claim.get("by")
    return ClaimInfo(
        token=claim.get("token"),
        at=claim.get("at"),
        by=by,
        scheduled_at=claim.get("scheduled_at"),
        age=age,
        # SPEC §3: live while its age is in [0, claim_ttl); one from the future is stale.
        live=age is not None and 0 <= age < ttl,
        claim_ttl=ttl,
        owner_gone=isinstance(by, str) and owner_gone(by),
    )


def _recent(job_id: str, limit: int) -> list[dict[str, Any]]:
    # Reading must not create the ledger (as `history` does not).
    if limit <= 0 or not get_store().ledger().exists():
        return []
    from cron.executions import list_executions

    return list_executions(job_id, limit=limit)


def explain_job(
    job_id: str,
    *,
    now: datetime | None = None,
    limit: int = 5,
    cfg: dict[str, Any] | None = None,
) -> Explanation:
    """Why job ``job_id`` will (not) fire, judged at ``now``; writes nothing.

    ``limit`` bounds the ledger rows shown (newest first). Raises
    :class:`~cron.errors.JobNotFoundError` for an unknown id.
    """
    from cron.jobs import get_job
    from cron.status import ticker_status

    at = now if now is not None else datetime.now(UTC)
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    cfg = cfg if cfg is not None else load_config()
    job = get_job(job_id)
    if job is None:
        raise JobNotFoundError(job_id)
    zone = _zone_of(job)
    ttl = float(cfg_get(cfg, "cron", "claim_ttl", default=300))
    claim = _claim_info(job, at, ttl)
    status = ticker_status(at, cfg=cfg)
    nxt = to_dt(job.get("next_run_at"))
    sched = job.get("schedule") or {}
    will_fire, verdict = _verdict(job, nxt, claim, status.state, at, zone)
    return Explanation(
        id=str(job["id"]),
        name=str(job.get("name")),
        schedule=str(sched.get("display") or sched.get("expr") or sched),
        kind=str(sched.get("kind")),
        zone=_zone_name(zone),
        state=str(job.get("state")),
        enabled=bool(job.get("enabled", True)),
        will_fire=will_fire,
        verdict=verdict,
        next_run_at=job.get("next_run_at"),
        next_run_local=nxt.astimezone(zone).isoformat() if nxt is not None else None,
        next_run_in=(nxt - at).total_seconds() if nxt is not None else None,
        paused_at=job.get("paused_at"),
        paused_reason=job.get("paused_reason"),
        last_run_at=job.get("last_run_at"),
        last_status=job.get("last_status"),
        last_error=job.get("last_error"),
        failure_streak=int(job.get("failure_streak") or 0),
        claim=claim,
        recent=_recent(str(job["id"]), limit),
        ticker=status.to_dict(),
        now=at.isoformat(),
    )


def _verdict(
    job: Job | JobDoc,
    nxt: datetime | None,
    claim: ClaimInfo | None,
    ticker_state: str,
    now: datetime,
    zone: tzinfo,
) -> tuple[bool | None, str]:
    """(will it fire, the headline) — the first rule that applies wins."""
    state = job.get("state")
    if state == JobState.COMPLETED:
        return False, "will not fire again: it is completed"
    if state == JobState.PAUSED or not job.get("enabled", True):
        return False, "will not fire: it is paused"
    if state == JobState.ERROR:
        return False, "will not fire: it is in the error state"
    if nxt is None:
        return False, "will not fire: it has no next slot"
    when = _when(nxt, zone, now)
    if ticker_state in _NOT_FIRING:
        return False, f"will NOT fire at its next slot, {when}: the ticker is {ticker_state}"
    if ticker_state == "unknown":
        return None, f"should fire next at {when}, but the ticker's state is unknown"
    if claim is not None and claim.live:
        return True, f"is running now (a run holds its claim); its next slot is {when}"
    if nxt <= now:
        return True, f"is overdue: its slot {when} has passed, so the next tick fires it"
    return True, f"will fire next at {when}"


# -- sentences ------------------------------------------------------------------------------------


def _when(value: object, zone: tzinfo, now: datetime, *, relative: bool = True) -> str:
    return fmt_time(value, now=now, zone=zone, relative=relative)


def _span(seconds: float) -> str:
    return fmt_duration(seconds)


def _next_sentence(exp: Explanation, zone: tzinfo, now: datetime) -> str:
    nxt = to_dt(exp.next_run_at)
    if nxt is None:
        return "It has no next slot."
    local = nxt.astimezone(zone)
    text = f"Its next slot is {local:%Y-%m-%d %H:%M:%S} {fmt_offset(local)} ({exp.zone})"
    if local.utcoffset():
        text += f", {nxt.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    delta = (nxt - now).total_seconds()
    if delta >= 1:
        return f"{text}, in {fmt_duration(delta)}."
    if delta > -1:
        return f"{text}, now."
    return f"{text}: {fmt_duration(delta)} overdue."


def _state_sentence(exp: Explanation, zone: tzinfo, now: datetime) -> str:
    if exp.state == JobState.PAUSED or not exp.enabled:
        since = f" since {_when(exp.paused_at, zone, now)}" if exp.paused_at else ""
        why = f", reason: {exp.paused_reason}" if exp.paused_reason else ""
        return f"It is paused{since}{why}; 'cronkit resume {exp.id}' fires it again."
    if exp.state == JobState.COMPLETED:
        return "It is completed: it has run as many times as it was meant to."
    if exp.state == JobState.ERROR:
        err = f": {exp.last_error}" if exp.last_error else ""
        return f"It is in the error state{err}."
    return "It is scheduled and enabled."


def _last_run_sentence(exp: Explanation, zone: tzinfo, now: datetime) -> str:
    if not exp.last_run_at and not exp.last_status:
        return "It has not run yet."
    when = f", {_when(exp.last_run_at, zone, now)}," if exp.last_run_at else ""
    text = f"Its last run{when} ended {exp.last_status or 'with no recorded status'}"
    if exp.last_error:
        text += f" ({' '.join(exp.last_error.split())})"
    if exp.failure_streak > 1:
        text += f"; {exp.failure_streak} slots in a row have failed"
    return text + "."


def _claim_sentence(exp: Explanation, zone: tzinfo, now: datetime) -> str:
    claim = exp.claim
    if claim is None:
        return "No run holds its claim."
    slot = (
        f" for the slot {_when(claim.scheduled_at, zone, now, relative=False)}"
        if (claim.scheduled_at)
        else ""
    )
    owner = claim.by or "an unknown owner"
    if claim.age is None:
        taken = "at an unknown time"
    elif claim.age >= 0:
        taken = f"{_span(claim.age)} ago"
    else:
        taken = f"{_span(claim.age)} in the future (a skewed clock)"
    if not claim.live:
        return (
            f"A stale claim is left by {owner} (taken {taken}{slot}; claim_ttl is "
            f"{claim.claim_ttl:g}s): the next fire takes it over."
        )
    left = claim.claim_ttl - (claim.age or 0.0)
    text = (
        f"A run holds its claim, taken {taken} by {owner}{slot}: no other run of this job "
        f"starts while it is live (it lapses in {_span(left)} unless the run refreshes it)"
    )
    if claim.owner_gone:
        text += "; its owner process is gone, so the claim is released once it lapses"
    return text + "."


def _row_sentence(row: dict[str, Any], zone: tzinfo, now: datetime) -> str:
    slot = row.get("scheduled_at") or row.get("claimed_at") or row.get("started_at")
    when = fmt_time(slot, now=now, zone=zone)
    status = str(row.get("status"))
    start, end = to_dt(row.get("started_at")), to_dt(row.get("finished_at"))
    details = [str(row.get("source") or "?")]
    if start is not None and end is not None:
        details.append(f"took {(end - start).total_seconds():.2f}s")
    text = f"{when}: {status}"
    if row.get("error"):
        text += f" - {' '.join(str(row['error']).split())}"
    return f"{text} ({', '.join(details)})"


def _ticker_sentence(ticker: dict[str, Any]) -> str:
    state = ticker.get("state")
    pid = ticker.get("gateway_pid")
    beat = ticker.get("heartbeat_age")
    beat_text = "never" if beat is None else f"{float(beat):.0f}s ago"
    if state == "running":
        return f"The ticker is running (pid {pid}, last heartbeat {beat_text}), so due jobs fire."
    if state == "external":
        detail = f": {ticker.get('detail')}" if ticker.get("detail") else ""
        return (
            f"The external provider {ticker.get('provider')!r} triggers jobs{detail} "
            "(ticker heartbeats do not apply)."
        )
    if state == "stalled":
        return (
            f"The ticker is STALLED (last heartbeat {beat_text}, more than "
            f"{float(ticker.get('stale_after') or 0):.0f}s): jobs are NOT firing; "
            "restart the gateway."
        )
    if state == "failing":
        err = f": {ticker.get('last_error')}" if ticker.get("last_error") else ""
        return f"The ticker is FAILING, its ticks raise{err}; jobs are NOT firing."
    if state == "unknown":
        return (
            f"A ticker process (pid {pid}) is alive but has never written a heartbeat, "
            "so whether jobs fire is unknown."
        )
    return (
        "No ticker is running: jobs will NOT fire; start one with 'cronkit gateway' "
        "(or 'cronkit install-service')."
    )


def format_explanation(exp: Explanation, *, now: datetime | None = None) -> list[str]:
    """The explanation as plain sentences: a headline, then one line per fact."""
    from cron.schedule import resolve_zone

    at = now if now is not None else (to_dt(exp.now) or datetime.now(UTC))
    try:
        zone = resolve_zone(exp.zone)
    except ValueError:
        zone = resolve_zone()
    lines = [f"Job {exp.id} ({exp.name}) {exp.verdict}."]
    if exp.kind == "cron":
        lines.append(f"  Its schedule is {exp.schedule!r}, read on the wall clock of {exp.zone}.")
    else:
        lines.append(f"  Its schedule is {exp.schedule!r}.")
    lines.append(f"  {_state_sentence(exp, zone, at)}")
    lines.append(f"  {_next_sentence(exp, zone, at)}")
    lines.append(f"  {_last_run_sentence(exp, zone, at)}")
    lines.append(f"  {_claim_sentence(exp, zone, at)}")
    if exp.recent:
        n = len(exp.recent)
        lines.append(f"  Its last {n} recorded slot{'s' if n != 1 else ''}, newest first:")
        lines.extend(f"    {_row_sentence(row, zone, at)}" for row in exp.recent)
    else:
        lines.append("  No run of it is recorded in the ledger yet.")
    lines.append(f"  {_ticker_sentence(exp.ticker)}")
    return lines
