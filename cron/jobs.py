"""The job API: create, change, claim and mark jobs in the store under ``CRONKIT_HOME``.

Every function acts on the process-wide store (``cron.store.get_store()``,
``jobs.json`` by default). A read is a snapshot of whole jobs; every mutation is
a compare-and-set on one job's revision (:func:`cron.job_core._cas`), retried
when another writer won.
Every successful mutation notifies the active trigger provider
(``on_jobs_changed``) in this process; other processes notice through the
store itself.

This module adds jobs (:func:`create_job`, :func:`declare_job`) and reads them;
it is also where callers find every SPEC §3 name, including those that live
below it: changes to an existing job in :mod:`cron.job_edits`, the claim
protocol in :mod:`cron.job_claims`, field checks in :mod:`cron.job_fields`,
the compare-and-set and change notification in :mod:`cron.job_core`. Call them
as ``jobs.<name>``: that module attribute is the seam tests patch.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cron import claim as rules
from cron.errors import DuplicateJobError, JobValueError, ScheduleError
from cron.heartbeat import (
    clear_ticker_error,
    read_ticker_heartbeat,
    record_ticker_error,
    record_ticker_heartbeat,
)
from cron.job_claims import (
    claim_due_jobs,
    claim_job_for_fire,
    claim_job_for_fire_ex,
    claim_retry,
    claim_signed_fire,
    mark_job_run,
    mark_job_runs,
    refresh_claim,
    refresh_claims,
    retry_may_start,
)
from cron.job_core import (
    CAS_ATTEMPTS,
    _first_run,
    _notify_changed,
    _now,
    _record_event,
    add_change_listener,
    get_job,
    remove_change_listener,
)
from cron.job_edits import pause_job, remove_job, resume_job, update_job
from cron.job_fields import _validated, _warn_unimportable, validate_key
from cron.model import Job, JobDoc, JobState
from cron.schedule import to_iso
from cron.store import get_store

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
    retry: int | dict[str, Any] | None = None,
    key: str | None = None,
    now: datetime | None = None,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> JobDoc:
    """Validate everything first, then add the job in one store write.

    ``key`` makes the job *declared* (SPEC §14): unique in the store, and a
    second ``create_job`` with the same key updates that job (same id; its next
    run is recomputed only if the schedule changed) instead of adding one —
    unchanged input writes nothing. See :func:`declare_job`.

    ``retry`` (``{"max": N, "backoff": s, "max_backoff": s}``, any subset; a
    bare int is ``max``) runs a failed slot again (SPEC §13); keys left out
    come from ``cron.retry``.

    A one-shot whose time has passed is rejected with :class:`ScheduleError`:
    accepting it would either fire a stale action or silently never fire.
    ``cwd`` (an existing absolute directory) and ``env`` (names to strings,
    command jobs only) say where a command runs; unset, they are not stored.
    A python target must be well formed (else :class:`ActionError`); one that
    does not import here is logged at WARNING and the job is still added.
    """
    if key is not None:
        return declare_job(
            schedule,
            action,
            key=key,
            name=name,
            repeat=repeat,
            enabled=enabled,
            tz=tz,
            catch_up=catch_up,
            timeout=timeout,
            retry=retry,
            now=now,
            cwd=cwd,
            env=env,
        ).job
    now = _now(now)
    v = _validated(
        schedule,
        action,
        tz=tz,
        name=name,
        repeat=repeat,
        catch_up=catch_up,
        timeout=timeout,
        retry=retry,
        cwd=cwd,
        env=env,
        now=now,
    )
    if not isinstance(enabled, bool):
        raise JobValueError("enabled", enabled, "expected true or false")
    return _insert_new(
        v.sched,
        v.act,
        key=None,
        name=v.name,
        repeat=v.times,
        enabled=enabled,
        catch_up=v.catch_up,
        timeout=v.timeout,
        retry=v.retry,
        cwd=v.cwd,
        env=v.env,
        now=now,
        text=schedule,
    )


# -- declared jobs (SPEC §14) ------------------------------------------------------


@dataclass(frozen=True)
class Declared:
    """What :func:`declare_job` did (or, with ``dry_run``, would do) to the job with a key."""

    verdict: str
    """``created`` | ``updated`` | ``unchanged``."""
    job: JobDoc
    """The job as stored afterwards (``dry_run``: as it would be; a new one has id ``""``)."""
    changed: tuple[str, ...] = ()
    """The fields an update changed."""


def _declared_changes(
    existing: JobDoc,
    *,
    sched: dict[str, Any],
    schedule: str | dict[str, Any],
    tz: str | None,
    act: dict[str, Any],
    name: str,
    repeat_times: int | None,
    enabled: bool | None,
    catch_up: str | None,
    timeout: float | None,
    retry: dict[str, Any] | None,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The ``update_job`` changes that make ``existing`` what the declaration says."""
    changes: dict[str, Any] = {}
    if sched != existing.get("schedule"):
        changes["schedule"] = schedule
        changes["tz"] = tz or ""
    if act != existing.get("action"):
        changes["action"] = act
    if name != existing.get("name"):
        changes["name"] = name
    if repeat_times != (existing.get("repeat") or {}).get("times"):
        changes["repeat"] = repeat_times
    if enabled is not None and enabled != bool(existing.get("enabled", True)):
        changes["enabled"] = enabled
    for field_name, value in (
        ("catch_up", catch_up),
        ("timeout", timeout),
        ("retry", retry),
        ("cwd", cwd),
        ("env", env),
    ):
        if value != existing.get(field_name):
            changes[field_name] = value
    return changes


def declare_job(
    schedule: str | dict[str, Any],
    action: str | dict[str, Any],
    *,
    key: str,
    name: str | None = None,
    repeat: int | dict[str, Any] | None = None,
    enabled: bool | None = True,
    tz: str | None = None,
    catch_up: str | None = None,
    timeout: float | None = None,
    retry: int | dict[str, Any] | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> Declared:
    """Make the job with ``key`` be what these arguments say: create it, update it, or nothing.

    The declaration is the whole job: a field not given (``catch_up``,
    ``timeout``, ``retry``) is removed, a name not given is the default one —
    except ``enabled=None``, which leaves a stored job's paused/active state as
    it is (new jobs start enabled). An update keeps the id, the run history
    and ``next_run_at`` unless the schedule (or its zone) changed. Everything
    is validated before anything is written; ``dry_run`` writes nothing.
    """
    key = validate_key(key)
    now = _now(now)
    v = _validated(
        schedule,
        action,
        tz=tz,
        name=name,
        repeat=repeat,
        catch_up=catch_up,
        timeout=timeout,
        retry=retry,
        cwd=cwd,
        env=env,
        now=now,
    )
    tz, sched, act, job_name, times = v.tz, v.sched, v.act, v.name, v.times
    catch, tmo, rty, work_dir, job_env = v.catch_up, v.timeout, v.retry, v.cwd, v.env
    if enabled is not None and not isinstance(enabled, bool):
        raise JobValueError("enabled", enabled, "expected true or false")
    store = get_store()
    for _ in range(CAS_ATTEMPTS):
        found = store.find_key(key)
        if found is None:
            if dry_run:
                if _first_run(sched, now) is None:
                    raise ScheduleError(schedule, "that time is in the past")
                return Declared(
                    "created",
                    {"id": "", "key": key, "name": job_name, "schedule": sched, "action": act},
                )
            try:
                job = _insert_new(
                    sched,
                    act,
                    key=key,
                    name=job_name,
                    repeat=times,
                    enabled=True if enabled is None else enabled,
                    catch_up=catch,
                    timeout=tmo,
                    retry=rty,
                    now=now,
                    cwd=work_dir,
                    env=job_env,
                )
            except DuplicateJobError as exc:
                if exc.field != "key":
                    raise
                continue  # another writer declared it first: update theirs instead
            return Declared("created", job)
        changes = _declared_changes(
            found.job,
            sched=sched,
            schedule=schedule,
            tz=tz,
            act=act,
            name=job_name,
            repeat_times=times,
            enabled=enabled,
            catch_up=catch,
            timeout=tmo,
            retry=rty,
            cwd=work_dir,
            env=job_env,
        )
        if not changes:
            return Declared("unchanged", found.job)
        fields = tuple(sorted(k for k in changes if k != "tz" or "schedule" not in changes))
        if dry_run:
            return Declared("updated", found.job, fields)
        return Declared("updated", update_job(found.job["id"], now=now, **changes), fields)
    raise TimeoutError(f"key {key!r}: {CAS_ATTEMPTS} writers in a row changed it first")


# -- new jobs and reads -----------------------------------------------------


def _new_id() -> str:
    return uuid.uuid4().hex[:12]


def _insert_new(
    sched: dict[str, Any],
    act: dict[str, Any],
    *,
    key: str | None,
    name: str,
    repeat: int | None,
    enabled: bool,
    catch_up: str | None,
    timeout: float | None,
    retry: dict[str, Any] | None,
    now: datetime,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    text: object = None,
) -> JobDoc:
    """Insert a new job from already validated fields (a fresh id; with ``key``, a duplicate
    key raises :class:`DuplicateJobError` from the store: an insert never overwrites)."""
    next_run = _first_run(sched, now)
    if next_run is None:
        raise ScheduleError(
            text if text is not None else sched.get("display"), "that time is in the past"
        )
    # Built as the typed model (every key and value type checked), stored as the document.
    job: Job = {
        "id": "",
        "name": name,
        "schedule": sched,
        "action": act,
        "repeat": {"times": repeat, "completed": 0},
        "enabled": enabled,
        "state": JobState.SCHEDULED if enabled else JobState.PAUSED,
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
    # Optional fields are absent, not null, when unset (the goldens pin that).
    if catch_up is not None:
        job["catch_up"] = catch_up
    if timeout is not None:
        job["timeout"] = timeout
    if cwd is not None:
        job["cwd"] = cwd
    if env is not None:
        job["env"] = env
    if retry is not None:
        job["retry"] = retry
    # A declared job's key comes right after its id (the goldens pin the key order).
    doc: JobDoc = {"id": "", "key": key} if key is not None else {}
    doc.update(job)
    store = get_store()
    while True:
        doc["id"] = _new_id()
        try:
            store.insert(doc)
            break
        except DuplicateJobError as exc:
            if exc.field != "id":
                raise
    _record_event("create", doc, now)
    _notify_changed()
    _warn_unimportable(doc)
    return doc


def find_job_by_key(key: str) -> JobDoc | None:
    """The job declared with ``key``, or None."""
    found = get_store().find_key(key)
    return found.job if found is not None else None


def list_jobs(*, include_disabled: bool = True) -> list[JobDoc]:
    jobs = [s.job for s in get_store().scan()]
    if include_disabled:
        return jobs
    return [j for j in jobs if rules.is_active(j)]


def get_due_jobs(now: datetime | None = None) -> list[JobDoc]:
    """Enabled, scheduled jobs whose ``next_run_at <= now`` (a snapshot; claims decide)."""
    at = _now(now)
    out = []
    for stored in get_store().scan(due_by=at):
        job = stored.job
        due = rules.parse_ts(job.get("next_run_at"))
        if rules.is_active(job) and due is not None and due <= at:
            out.append(job)
    return out


__all__ = [
    "Declared",
    "add_change_listener",
    "claim_due_jobs",
    "claim_job_for_fire",
    "claim_job_for_fire_ex",
    "claim_retry",
    "claim_signed_fire",
    "clear_ticker_error",
    "create_job",
    "declare_job",
    "find_job_by_key",
    "get_due_jobs",
    "get_job",
    "list_jobs",
    "mark_job_run",
    "mark_job_runs",
    "pause_job",
    "read_ticker_heartbeat",
    "record_ticker_error",
    "record_ticker_heartbeat",
    "refresh_claim",
    "refresh_claims",
    "remove_change_listener",
    "remove_job",
    "resume_job",
    "retry_may_start",
    "update_job",
]
