"""Changing a job that exists: update, pause, resume, remove (SPEC §3).

Each change is one compare-and-set on the job (:func:`cron.job_core._cas`), validated
before it is tried, followed by the audit's event row and the change bus. The state
rules the changes share live here too: resuming fires from now (no burst of missed
runs), and a job whose repeats are used up never re-arms.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from cron import claim as rules
from cron.errors import JobNotFoundError, JobValueError, ScheduleError
from cron.job_core import (
    _cas,
    _encoded,
    _first_run,
    _notify_changed,
    _now,
    _record_event,
    json_copy,
)
from cron.job_fields import (
    EDITABLE,
    _check_where,
    _validate_catch_up,
    _validate_name,
    _validate_repeat,
    _validate_timeout,
    _validate_tz,
    _warn_unimportable,
)
from cron.model import JobDoc, JobState, RunStatus
from cron.retry import validate_retry
from cron.runners import validate_action, validate_cwd, validate_env
from cron.schedule import parse_schedule, to_iso
from cron.store import get_store


def _mutate(job_id: str, fn: Callable[[JobDoc], None], *, at: datetime) -> JobDoc:
    seen: list[JobDoc] = []  # the job as the winning attempt found it

    def apply(job: JobDoc | None) -> JobDoc:
        if job is None:
            raise JobNotFoundError(job_id)
        seen[:] = [json_copy(job)]
        fn(job)
        return json_copy(job)

    result = _cas(job_id, apply)
    if seen and _encoded(seen[0]) != _encoded(result):
        _record_event(_event_kind(seen[0], result), result, at, seen[0])
    _notify_changed()
    return result


def _event_kind(before: JobDoc, after: JobDoc) -> str:
    was, now = before.get("state"), after.get("state")
    if was != JobState.PAUSED and now == JobState.PAUSED:
        return "pause"
    if was == JobState.PAUSED and now != JobState.PAUSED:
        return "resume"
    return "edit"


def update_job(job_id: str, *, now: datetime | None = None, **changes: Any) -> JobDoc:
    """Change editable fields; a schedule or zone change recomputes ``next_run_at``.

    Editable: ``name schedule action repeat enabled catch_up timeout tz cwd env retry``
    (``cwd``/``env`` None or empty removes them; ``retry`` replaces the whole field,
    None removes it).
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
        new["action"] = validate_action(changes["action"])
    if "catch_up" in changes:
        new["catch_up"] = _validate_catch_up(changes["catch_up"])
    if "timeout" in changes:
        new["timeout"] = _validate_timeout(changes["timeout"])
    if "retry" in changes:
        new["retry"] = validate_retry(changes["retry"])
    if "enabled" in changes and not isinstance(changes["enabled"], bool):
        raise JobValueError("enabled", changes["enabled"], "expected true or false")
    where: dict[str, Any] = {}
    if "cwd" in changes:
        where["cwd"] = validate_cwd(changes["cwd"])
    if "env" in changes:
        where["env"] = validate_env(changes["env"])
    tz_given = "tz" in changes
    tz = _validate_tz(changes.get("tz")) if tz_given else None
    sched: dict[str, Any] | None = None
    if "schedule" in changes:
        sched = parse_schedule(changes["schedule"], tz=tz, now=now)
    repeat_times = None
    if "repeat" in changes:
        repeat_times = _validate_repeat(changes["repeat"], (sched or {}).get("kind", "cron"))

    def apply(job: JobDoc) -> None:
        job.update({k: v for k, v in new.items() if v is not None})
        for key in ("catch_up", "timeout", "retry"):
            if key in new and new[key] is None:
                job.pop(key, None)
        for key, value in where.items():
            if value is None:
                job.pop(key, None)
            else:
                job[key] = value
        _check_where(job["action"], job.get("env"))
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
        if sched is not None and job.get("state") == JobState.COMPLETED:
            job["state"] = JobState.SCHEDULED if job.get("enabled", True) else JobState.PAUSED
            job["repeat"]["completed"] = 0
        if "enabled" in changes:
            if changes["enabled"] and job.get("state") == JobState.PAUSED:
                _resume_in_place(job, now)
                recompute = False
            elif not changes["enabled"] and job.get("state") == JobState.SCHEDULED:
                _pause_in_place(job, now, None)
                recompute = False
        if recompute and job.get("state") == JobState.SCHEDULED:
            nxt = _first_run(job["schedule"], now)
            if nxt is None:
                raise ScheduleError(changes.get("schedule"), "that time is in the past")
            job["next_run_at"] = to_iso(nxt)
        _settle_spent(job)

    updated = _mutate(job_id, apply, at=now)
    if "action" in changes or "cwd" in changes:
        _warn_unimportable(updated)
    return updated


def remove_job(job_id: str, *, now: datetime | None = None) -> bool:
    store = get_store()
    before = store.get(job_id)
    removed = store.delete(job_id)
    if removed:
        if before is not None:
            _record_event("remove", before.job, _now(now), before.job)
        _notify_changed()
    return removed


def _pause_in_place(job: JobDoc, now: datetime, reason: str | None) -> None:
    job["enabled"] = False
    job["state"] = JobState.PAUSED
    job["paused_at"] = to_iso(now)
    job["paused_reason"] = reason
    job["next_run_at"] = None


def _resume_in_place(job: JobDoc, now: datetime) -> None:
    job["enabled"] = True
    job["state"] = JobState.SCHEDULED
    job["paused_at"] = None
    job["paused_reason"] = None
    # From now, never from the pause: resuming must not replay missed runs.
    nxt = _first_run(job["schedule"], now)
    if nxt is None:
        # A one-shot whose time passed while paused cannot fire any more.
        job["state"] = JobState.COMPLETED
        job["last_status"] = RunStatus.MISSED
        job["last_error"] = "one-shot time passed while the job was paused"
    job["next_run_at"] = to_iso(nxt) if nxt is not None else None
    _settle_spent(job)


def _settle_spent(job: JobDoc) -> None:
    """A job whose repeats are used up gets no next run, whatever else changed.

    Its final run may still hold the claim; ``mark_job_run`` completes it then.
    Without this, resuming or rescheduling a spent job mid-run would re-arm
    it and it would fire more than ``repeat.times``.
    """
    if job.get("state") == JobState.SCHEDULED and rules.is_spent(job):
        job["next_run_at"] = None
        if not job.get("fire_claim"):
            job["state"] = JobState.COMPLETED


def pause_job(job_id: str, reason: str | None = None, *, now: datetime | None = None) -> JobDoc:
    """Stop firing until resumed; ``next_run_at`` becomes null. A completed job stays completed."""
    at = _now(now)

    def apply(job: JobDoc) -> None:
        if job.get("state") == JobState.COMPLETED:
            raise JobValueError("state", "completed", "a completed job cannot be paused")
        if job.get("state") != JobState.PAUSED:
            _pause_in_place(job, at, reason)
        elif reason is not None:
            job["paused_reason"] = reason

    return _mutate(job_id, apply, at=at)


def resume_job(job_id: str, *, now: datetime | None = None) -> JobDoc:
    """Fire again, from the next slot after ``now``: no burst of the runs missed while paused."""
    at = _now(now)

    def apply(job: JobDoc) -> None:
        if job.get("state") == JobState.COMPLETED:
            raise JobValueError("state", "completed", "a completed job cannot be resumed")
        if job.get("state") != JobState.SCHEDULED or not job.get("enabled", True):
            _resume_in_place(job, at)

    return _mutate(job_id, apply, at=at)


__all__ = ["pause_job", "remove_job", "resume_job", "update_job"]
