"""The job API: create, change, claim and mark jobs in the store under ``CRONKIT_HOME``.

Every function acts on the process-wide store (``cron.store.get_store()``,
``jobs.json`` by default). Reads take no lock (writes are atomic renames, so a
reader sees a whole file); every mutation is one exclusive read-modify-write.
Every successful mutation notifies the active trigger provider
(``on_jobs_changed``) in this process; other processes notice through the
store itself.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from cron import claim as rules
from cron import paths
from cron.config import CATCH_UP_POLICIES, cfg_get, read_config
from cron.errors import JobNotFoundError, JobValueError, ScheduleError
from cron.groupcommit import GroupCommit, Pending
from cron.procinfo import owner_id
from cron.runners import validate_action
from cron.schedule import compute_next_run, parse_schedule, resolve_zone, to_iso
from cron.store import Job, get_store

log = logging.getLogger(__name__)

JOB_ID_RE = re.compile(r"^[0-9a-f]{12}$")
EDITABLE = frozenset(
    {"name", "schedule", "action", "repeat", "enabled", "catch_up", "timeout", "tz"}
)

_change_listeners: list[Callable[[], None]] = []


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)
    return now.astimezone(UTC)


def add_change_listener(fn: Callable[[], None]) -> None:
    """Call ``fn()`` after every successful mutation in this process."""
    if fn not in _change_listeners:
        _change_listeners.append(fn)


def remove_change_listener(fn: Callable[[], None]) -> None:
    with contextlib.suppress(ValueError):
        _change_listeners.remove(fn)


def _notify_changed() -> None:
    # The mutation is already durable: a failing hook is logged, never raised.
    listeners = list(_change_listeners)
    if not listeners:
        try:
            from cron.scheduler_provider import notify_jobs_changed
        except ImportError:
            return
        listeners = [notify_jobs_changed]
    for fn in listeners:
        try:
            fn()
        except Exception:
            log.exception("on_jobs_changed hook %r failed", fn)


# -- validation -------------------------------------------------------------


def _validate_tz(tz: object) -> str | None:
    if tz is None or tz == "":
        return None
    if not isinstance(tz, str):
        raise ScheduleError(tz, "a time zone must be an IANA name such as 'Europe/Berlin'")
    resolve_zone(tz)  # raises ScheduleError for an unknown zone
    return tz


def _validate_repeat(repeat: object, kind: str) -> dict[str, Any]:
    if repeat is None:
        return {"times": 1 if kind == "once" else None, "completed": 0}
    times: object = repeat.get("times") if isinstance(repeat, dict) else repeat
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
        raise JobValueError("repeat", repeat, "expected a whole number >= 1 or null (forever)")
    return {"times": times, "completed": 0}


def _validate_catch_up(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value in CATCH_UP_POLICIES):
        return value
    raise JobValueError("catch_up", value, "expected 'once' or 'skip'")


def _validate_timeout(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise JobValueError("timeout", value, "expected seconds >= 0 (0 = no timeout)")
    return value


def _validate_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise JobValueError("name", value, "expected a non-empty string")
    return value.strip()


def _default_name(action: dict[str, Any]) -> str:
    text = str(action.get("command") or action.get("target") or action.get("kind"))
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:37] + "..."


def _first_run(schedule: dict[str, Any], now: datetime) -> datetime | None:
    if schedule["kind"] == "interval":
        return compute_next_run(schedule, after=now)
    return compute_next_run(schedule, after=now, tz=schedule.get("tz"))


def _new_id(existing: set[str]) -> str:
    while True:
        candidate = uuid.uuid4().hex[:12]
        if candidate not in existing:
            return candidate


# -- CRUD -------------------------------------------------------------------


def create_job(
    schedule: str | dict[str, Any],
    action: str | dict[str, Any],
    *,
    name: str | None = None,
    repeat: int | dict[str, Any] | None = None,
    enabled: bool = True,
    tz: str | None = None,
    catch_up: str | None = None,
    timeout: float | None = None,
    now: datetime | None = None,
) -> Job:
    """Validate everything first, then add the job in one store write.

    A one-shot whose time has passed is rejected with :class:`ScheduleError`:
    accepting it would either fire a stale action or silently never fire.
    """
    now = _now(now)
    tz = _validate_tz(
        tz if tz is not None else (schedule.get("tz") if isinstance(schedule, dict) else None)
    )
    sched = parse_schedule(schedule, tz=tz, now=now)
    if tz:
        sched["tz"] = tz
    act = validate_action(action, check_import=True)
    rep = _validate_repeat(repeat, sched["kind"])
    catch = _validate_catch_up(catch_up)
    tmo = _validate_timeout(timeout)
    job_name = _validate_name(name) if name is not None else _default_name(act)
    if not isinstance(enabled, bool):
        raise JobValueError("enabled", enabled, "expected true or false")
    next_run = _first_run(sched, now)
    if next_run is None:
        raise ScheduleError(schedule, "that time is in the past")
    job: Job = {
        "id": "",
        "name": job_name,
        "schedule": sched,
        "action": act,
        "repeat": rep,
        "enabled": enabled,
        "state": "scheduled" if enabled else "paused",
        "paused_at": None if enabled else to_iso(now),
        "paused_reason": None if enabled else "created disabled",
        "created_at": to_iso(now),
        "next_run_at": to_iso(next_run) if enabled else None,
        "last_run_at": None,
        "last_scheduled_at": None,
        "last_status": None,
        "last_error": None,
        "failure_streak": 0,
        "fire_claim": None,
    }
    if catch is not None:
        job["catch_up"] = catch
    if tmo is not None:
        job["timeout"] = tmo
    with get_store().transaction() as jobs:
        job["id"] = _new_id({j["id"] for j in jobs})
        jobs.append(job)
    _notify_changed()
    return job


def get_job(job_id: str) -> Job | None:
    return get_store().get(job_id)


def list_jobs(*, include_disabled: bool = True) -> list[Job]:
    jobs = get_store().load()
    if include_disabled:
        return jobs
    return [j for j in jobs if j.get("enabled", True) and j.get("state") == "scheduled"]


def _mutate(job_id: str, fn: Callable[[Job], None]) -> Job:
    def apply(job: Job | None) -> Job:
        if job is None:
            raise JobNotFoundError(job_id)
        fn(job)
        return json_copy(job)

    result = get_store().update_jobs([job_id], apply)[job_id]
    _notify_changed()
    return result


def update_job(job_id: str, *, now: datetime | None = None, **changes: Any) -> Job:
    """Change editable fields; a schedule or zone change recomputes ``next_run_at``.

    Editable: ``name schedule action repeat enabled catch_up timeout tz``.
    Anything else (``id``, ``fire_claim``, ``state`` ...) is a
    :class:`JobValueError`: those are owned by the claim protocol.
    """
    now = _now(now)
    unknown = set(changes) - EDITABLE
    if unknown:
        bad = sorted(unknown)[0]
        raise JobValueError("field", bad, f"not editable (editable: {', '.join(sorted(EDITABLE))})")
    # Validate before taking the lock so bad input writes nothing.
    new: dict[str, Any] = {}
    if "name" in changes:
        new["name"] = _validate_name(changes["name"])
    if "action" in changes:
        new["action"] = validate_action(changes["action"], check_import=True)
    if "catch_up" in changes:
        new["catch_up"] = _validate_catch_up(changes["catch_up"])
    if "timeout" in changes:
        new["timeout"] = _validate_timeout(changes["timeout"])
    if "enabled" in changes and not isinstance(changes["enabled"], bool):
        raise JobValueError("enabled", changes["enabled"], "expected true or false")
    tz_given = "tz" in changes
    tz = _validate_tz(changes.get("tz")) if tz_given else None
    sched: dict[str, Any] | None = None
    if "schedule" in changes:
        sched = parse_schedule(changes["schedule"], tz=tz, now=now)
    repeat_times = None
    if "repeat" in changes:
        repeat_times = _validate_repeat(changes["repeat"], (sched or {}).get("kind", "cron"))

    def apply(job: Job) -> None:
        job.update({k: v for k, v in new.items() if v is not None})
        for key in ("catch_up", "timeout"):
            if key in new and new[key] is None:
                job.pop(key, None)
        recompute = False
        if sched is not None or tz_given:
            s = dict(sched) if sched is not None else dict(job["schedule"])
            zone = tz if tz_given else job["schedule"].get("tz")
            s.pop("tz", None)
            if zone:
                s["tz"] = zone
            job["schedule"] = s
            recompute = True
        if repeat_times is not None:
            job["repeat"]["times"] = repeat_times["times"]
            if sched is not None and sched["kind"] == "once" and changes["repeat"] is None:
                job["repeat"]["times"] = 1
        elif sched is not None and sched["kind"] == "once":
            job["repeat"] = {"times": 1, "completed": 0}
        if sched is not None and job.get("state") == "completed":
            job["state"] = "scheduled" if job.get("enabled", True) else "paused"
            job["repeat"]["completed"] = 0
        if "enabled" in changes:
            if changes["enabled"] and job.get("state") == "paused":
                _resume_in_place(job, now)
                recompute = False
            elif not changes["enabled"] and job.get("state") == "scheduled":
                _pause_in_place(job, now, None)
                recompute = False
        if recompute and job.get("state") == "scheduled":
            nxt = _first_run(job["schedule"], now)
            if nxt is None:
                raise ScheduleError(changes.get("schedule"), "that time is in the past")
            job["next_run_at"] = to_iso(nxt)
        _settle_spent(job)

    return _mutate(job_id, apply)


def remove_job(job_id: str) -> bool:
    with get_store().transaction() as jobs:
        before = len(jobs)
        jobs[:] = [j for j in jobs if j.get("id") != job_id]
        removed = len(jobs) != before
    if removed:
        _notify_changed()
    return removed


def _pause_in_place(job: Job, now: datetime, reason: str | None) -> None:
    job["enabled"] = False
    job["state"] = "paused"
    job["paused_at"] = to_iso(now)
    job["paused_reason"] = reason
    job["next_run_at"] = None


def _resume_in_place(job: Job, now: datetime) -> None:
    job["enabled"] = True
    job["state"] = "scheduled"
    job["paused_at"] = None
    job["paused_reason"] = None
    # From now, never from the pause: resuming must not replay missed runs.
    nxt = _first_run(job["schedule"], now)
    if nxt is None:
        # A one-shot whose time passed while paused cannot fire any more.
        job["state"] = "completed"
        job["last_status"] = "missed"
        job["last_error"] = "one-shot time passed while the job was paused"
    job["next_run_at"] = to_iso(nxt) if nxt is not None else None
    _settle_spent(job)


def _settle_spent(job: Job) -> None:
    """A job whose repeats are used up gets no next run, whatever else changed.

    Its final run may still hold the claim; ``mark_job_run`` completes it then.
    Without this, resuming or rescheduling a spent job mid-run would re-arm
    it and it would fire more than ``repeat.times``.
    """
    if job.get("state") == "scheduled" and rules.is_spent(job):
        job["next_run_at"] = None
        if not job.get("fire_claim"):
            job["state"] = "completed"


def pause_job(job_id: str, reason: str | None = None, *, now: datetime | None = None) -> Job:
    """Stop firing until resumed; ``next_run_at`` becomes null. A completed job stays completed."""
    at = _now(now)

    def apply(job: Job) -> None:
        if job.get("state") == "completed":
            raise JobValueError("state", "completed", "a completed job cannot be paused")
        if job.get("state") != "paused":
            _pause_in_place(job, at, reason)
        elif reason is not None:
            job["paused_reason"] = reason

    return _mutate(job_id, apply)


def resume_job(job_id: str, *, now: datetime | None = None) -> Job:
    """Fire again, from the next slot after ``now``: no burst of the runs missed while paused."""
    at = _now(now)

    def apply(job: Job) -> None:
        if job.get("state") == "completed":
            raise JobValueError("state", "completed", "a completed job cannot be resumed")
        if job.get("state") != "scheduled" or not job.get("enabled", True):
            _resume_in_place(job, at)

    return _mutate(job_id, apply)


def get_due_jobs(now: datetime | None = None) -> list[Job]:
    """Enabled, scheduled jobs whose ``next_run_at <= now`` (a snapshot; claims decide)."""
    at = _now(now)
    out = []
    for job in get_store().load():
        if not job.get("enabled", True) or job.get("state") != "scheduled":
            continue
        due = rules.parse_ts(job.get("next_run_at"))
        if due is not None and due <= at:
            out.append(job)
    return out


# -- the claim ----------------------------------------------------------------


def _claim_settings() -> tuple[float, str]:
    cfg = read_config()
    return (
        float(cfg_get(cfg, "cron", "claim_ttl", default=300)),
        str(cfg_get(cfg, "cron", "catch_up", default="once")),
    )


def _write_events(events: list[rules.LedgerEvent], source: str, now: datetime) -> None:
    if not events:
        return
    from cron import executions

    for ev in events:
        try:
            executions.record_event(
                ev.job_id,
                status=ev.status,
                scheduled_at=ev.scheduled_at,
                source=source,
                error=ev.error,
                job_name=ev.job_name,
                now=now,
            )
        except Exception:
            # The store already advanced; a lost ledger row must not undo that.
            log.exception("could not record %s row for job %s", ev.status, ev.job_id)


def _record_claim(job: Job, token: str, source: str, now: datetime) -> None:
    from cron import executions

    try:
        executions.record_claim(
            token,
            job["id"],
            scheduled_at=job["fire_claim"]["scheduled_at"],
            source=source,
            owner=job["fire_claim"]["by"],
            job_name=job.get("name"),
            now=now,
        )
    except Exception:
        log.exception("could not record the claim of job %s in the ledger", job["id"])


def claim_job_for_fire(
    job_id: str,
    *,
    scheduled_at: datetime | str | None = None,
    now: datetime | None = None,
    force: bool = False,
    source: str = "manual",
) -> str | None:
    """Give one due slot of ``job_id`` to exactly one caller: compare-and-set under the lock.

    Returns a fresh claim token to the single winner and ``None`` to every
    other caller — threads, processes or machines sharing the store. ``None``
    is returned, and nothing in the store changes, when:

    1. the job is missing or ``completed``;
    2. the job is paused/disabled and ``force`` is False (``force`` runs it
       once and it stays paused);
    3. the job holds a live ``fire_claim`` (age in ``[0, claim_ttl)``; a claim
       dated in the future is stale). Running jobs refresh their claim at
       least every ``claim_ttl / 3``, so only a crashed run goes stale;
    4. without ``force``: the job is not due (``next_run_at > now``), or
       ``scheduled_at`` is earlier than ``next_run_at`` (a duplicate or stale
       fire) or later than ``now``; or the slot is later than its grace and
       the job's ``catch_up`` is ``skip`` (a one-shot: more than 120 s late) —
       the ticker records those as ``missed``.

    On success, in the same atomic write: ``fire_claim`` is stamped
    (``token``, ``at``, ``by`` = ``host:pid:start``, ``scheduled_at``), the
    fired slot is recorded in ``last_scheduled_at``, ``repeat.completed`` is
    incremented and ``next_run_at`` advances to the first slot strictly after
    ``now`` (null once spent). Advancing before the run means a crash mid-run
    loses at most one run and never repeats one. A ``scheduled_at`` later than
    ``next_run_at`` but not after ``now`` claims that slot and the slots passed
    over are recorded ``missed`` in the ledger. The ledger row (id = token,
    status ``claimed``, ``source``) is written after the store write.
    """
    return claim_job_for_fire_ex(
        job_id, scheduled_at=scheduled_at, now=now, force=force, source=source
    ).token


def claim_job_for_fire_ex(
    job_id: str,
    *,
    scheduled_at: datetime | str | None = None,
    now: datetime | None = None,
    force: bool = False,
    source: str = "manual",
) -> rules.ClaimOutcome:
    """:func:`claim_job_for_fire`, returning the outcome with its reason (for 409s and the CLI)."""
    at = _now(now)
    slot: datetime | None
    if isinstance(scheduled_at, str):
        slot = rules.parse_ts(scheduled_at)
    else:
        slot = _now(scheduled_at) if scheduled_at is not None else None
    ttl, catch_default = _claim_settings()
    req = _claims.submit(_ClaimRequest(job_id, slot, at, force, ttl, catch_default, owner_id()))
    outcome = req.outcome
    assert outcome is not None  # filled by _write_claims
    if req.claimed is not None and outcome.token is not None:
        _record_claim(req.claimed, outcome.token, source, at)
        _write_events(outcome.events, source, at)
    return outcome


@dataclass
class _ClaimRequest(Pending):
    job_id: str
    slot: datetime | None
    at: datetime
    force: bool
    ttl: float
    catch_up: str
    owner: str
    outcome: rules.ClaimOutcome | None = None
    claimed: Job | None = None

    def attempt(self, job: Job | None) -> None:
        self.outcome = rules.try_claim(
            job,
            now=self.at,
            claim_ttl=self.ttl,
            catch_up_default=self.catch_up,
            owner=self.owner,
            scheduled_at=self.slot,
            force=self.force,
        )
        if job is not None and self.outcome.won:
            self.claimed = json_copy(job)


R = TypeVar("R", "_ClaimRequest", "_MarkRequest")


def _apply_in_one_write(batch: list[R], apply: Callable[[R, Job], None]) -> set[str]:
    """``apply(request, job)`` for every request of a group-commit batch, in one store write.

    Requests for the same job are applied in arrival order to the same dict, so
    a compare-and-set holds inside the batch as it does across batches. Returns
    the ids of the jobs that exist.
    """
    by_job: dict[str, list[R]] = {}
    for req in batch:
        by_job.setdefault(req.job_id, []).append(req)

    def each(job: Job | None) -> bool:
        if job is None:
            return False
        for req in by_job[job["id"]]:
            apply(req, job)
        return True

    found = get_store().update_jobs(list(by_job), each)
    return {job_id for job_id, exists in found.items() if exists}


def _write_claims(batch: list[_ClaimRequest]) -> None:
    """One store write for concurrent claims (webhook bursts, contending threads):
    the first due request for a job wins, the rest see its live claim and lose."""
    found = _apply_in_one_write(batch, _ClaimRequest.attempt)
    for req in batch:
        if req.job_id not in found:
            req.attempt(None)


_claims: GroupCommit[_ClaimRequest] = GroupCommit(_write_claims)


def claim_due_jobs(now: datetime | None = None, *, source: str = "tick") -> list[tuple[Job, str]]:
    """The tick's batch claim: :func:`claim_job_for_fire` semantics for every due job, one write.

    Also applies the missed-run rules (grace, ``catch_up``, one-shot 120 s,
    overlap → ``skipped``) and writes their ledger rows. Returns ``(job,
    token)`` for each job this caller must run; the job dict carries its claim.
    """
    at = _now(now)
    store = get_store()
    wake = store.wake_at()
    if wake is None or wake > at:
        return []  # idle: nothing can be due; no lock, no parse
    ttl, catch_default = _claim_settings()
    owner = owner_id()
    won: list[tuple[Job, str]] = []
    events: list[rules.LedgerEvent] = []

    completed: list[str] = []

    def sweep(job: Job | None) -> None:
        if job is None:
            return  # removed since the candidates were read
        was = job.get("state")
        outcome = rules.sweep_due(
            job, now=at, claim_ttl=ttl, catch_up_default=catch_default, owner=owner
        )
        events.extend(outcome.events)
        if was != "completed" and job.get("state") == "completed":
            completed.append(job["id"])
        if outcome.token is not None:
            won.append((json_copy(job), outcome.token))

    # Only jobs that can be due are touched: one write for the whole batch.
    store.update_jobs(store.due_candidates(at), sweep)
    if won:
        from cron import executions

        rows = [
            (
                token,
                job["id"],
                job["fire_claim"]["scheduled_at"],
                job.get("name"),
                job["fire_claim"]["by"],
            )
            for job, token in won
        ]
        try:
            executions.record_claims(rows, source=source, now=at)
        except Exception:
            # The claims are durable in the store; a ledger outage must not stop the runs.
            log.exception("could not record %d claim(s) in the ledger", len(rows))
    _write_events(events, source, at)
    if completed:
        _notify_changed()
    return won


def json_copy(job: Job) -> Job:
    import json

    copied: Job = json.loads(json.dumps(job))
    return copied


@dataclass
class _MarkRequest(Pending):
    job_id: str
    token: str
    at: datetime
    status: str
    error: str | None
    applied: bool = False
    completed: bool = False

    def apply(self, job: Job) -> None:
        was = job.get("state")
        self.applied = rules.apply_run_result(
            job, self.token, now=self.at, status=self.status, error=self.error
        )
        self.completed = self.applied and was != "completed" and job.get("state") == "completed"


def _write_marks(batch: list[_MarkRequest]) -> None:
    """One store write for results that arrive together (a burst of finishing jobs)."""
    _apply_in_one_write(batch, _MarkRequest.apply)


_marks: GroupCommit[_MarkRequest] = GroupCommit(_write_marks)


def mark_job_run(
    job_id: str,
    token: str,
    *,
    success: bool,
    error: str | None = None,
    status: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Record a run's result — only if ``token`` still holds the job's live claim.

    A stale owner (its claim expired and the slot moved on) cannot overwrite a
    newer run's result: it gets False and nothing changes. On success the
    claim is cleared and ``last_run_at``, ``last_status``, ``last_error``,
    ``failure_streak`` are set; a spent job becomes ``completed``. Concurrent
    calls in one process are written together (group commit); each returns
    once its own result is written.
    """
    req = _marks.submit(
        _MarkRequest(job_id, token, _now(now), status or ("ok" if success else "error"), error)
    )
    if req.completed:
        # The set of jobs that can fire shrank: external providers must hear it.
        _notify_changed()
    return req.applied


def mark_job_runs(
    results: list[tuple[str, str, str, str | None]], *, now: datetime | None = None
) -> list[bool]:
    """:func:`mark_job_run` for many runs in one store write (shared with concurrent marks).

    ``results`` are ``(job_id, token, status, error)``; returns, per entry,
    whether it applied (same compare as :func:`mark_job_run`).
    """
    at = _now(now)
    batch = [
        _MarkRequest(job_id, token, at, status, error) for job_id, token, status, error in results
    ]
    if not batch:
        return []
    _marks.submit_many(batch)
    if any(r.completed for r in batch):
        _notify_changed()
    return [r.applied for r in batch]


def refresh_claim(job_id: str, token: str, *, now: datetime | None = None) -> bool:
    """Re-date the live claim held by ``token`` (called by running jobs every ``claim_ttl/3``)."""
    at = _now(now)

    def apply(job: Job | None) -> bool:
        return job is not None and rules.refresh(job, token, now=at)

    return get_store().update_jobs([job_id], apply)[job_id]


# -- ticker heartbeat files ----------------------------------------------------


def _write_epoch(path_fn: Callable[[], Any], value: float, extra: str = "") -> None:
    path = path_fn()
    paths.cron_dir(create=True)
    paths.atomic_write_text(path, f"{value:.3f}\n{extra}", durable=False)


def record_ticker_heartbeat(*, success: bool = True, now: datetime | None = None) -> None:
    """Write ``ticker_heartbeat`` (and ``ticker_last_success`` when ``success``).

    Best-effort by contract: a failure to write is logged, never raised — a
    full disk must not kill the loop whose liveness the file reports.
    """
    epoch = _now(now).timestamp() if now is not None else time.time()
    try:
        _write_epoch(paths.heartbeat_path, epoch)
    except Exception:
        log.warning("could not write the ticker heartbeat", exc_info=True)
    if success:
        # Independent of the heartbeat: one unwritable file must not hide the other.
        try:
            _write_epoch(paths.last_success_path, epoch)
        except Exception:
            log.warning("could not write the ticker success marker", exc_info=True)


def record_ticker_error(message: str, *, now: datetime | None = None) -> None:
    """Write ``ticker_last_error``: epoch on line 1, ``Type: message`` after. Best-effort."""
    epoch = _now(now).timestamp() if now is not None else time.time()
    try:
        _write_epoch(paths.last_error_path, epoch, message.rstrip("\n") + "\n")
    except Exception:
        log.warning("could not write the ticker error file", exc_info=True)


def clear_ticker_error() -> None:
    try:
        paths.last_error_path().unlink(missing_ok=True)
    except Exception:
        log.warning("could not remove the ticker error file", exc_info=True)


def _read_epoch(path: Any) -> tuple[float | None, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None, ""
    except OSError:
        return None, ""
    first, _, rest = text.partition("\n")
    try:
        return float(first.strip()), rest.strip()
    except ValueError:
        return None, rest.strip()


def read_ticker_heartbeat() -> tuple[float | None, float | None, str | None]:
    """``(heartbeat_epoch, last_success_epoch, last_error)``; None where a file is absent."""
    beat, _ = _read_epoch(paths.heartbeat_path())
    success, _ = _read_epoch(paths.last_success_path())
    err_at, err = _read_epoch(paths.last_error_path())
    error = err if (err or err_at is not None) else None
    return beat, success, error or None


__all__ = [
    "JOB_ID_RE",
    "add_change_listener",
    "claim_due_jobs",
    "claim_job_for_fire",
    "clear_ticker_error",
    "create_job",
    "get_due_jobs",
    "get_job",
    "list_jobs",
    "mark_job_run",
    "pause_job",
    "read_ticker_heartbeat",
    "record_ticker_error",
    "record_ticker_heartbeat",
    "refresh_claim",
    "remove_change_listener",
    "remove_job",
    "resume_job",
    "update_job",
]
