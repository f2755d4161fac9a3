"""The job API: create, change, claim and mark jobs in the store under ``CRONKIT_HOME``.

Every function acts on the process-wide store (``cron.store.get_store()``,
``jobs.json`` by default). Reads take no lock (writes are atomic renames, so a
reader sees a whole file); every mutation is one exclusive read-modify-write.
Every successful mutation notifies the active trigger provider
(``on_jobs_changed``) in this process; other processes notice through the
store itself.
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from cron import changes, metrics
from cron import claim as rules
from cron.config import CATCH_UP_POLICIES, cfg_get, read_config
from cron.errors import (
    DuplicateJobError,
    JobNotFoundError,
    JobValueError,
    ScheduleError,
    TimeZoneError,
)
from cron.heartbeat import (
    clear_ticker_error,
    read_ticker_heartbeat,
    record_ticker_error,
    record_ticker_heartbeat,
)
from cron.ledger_sql import LedgerRow
from cron.procinfo import owner_id
from cron.retry import validate_retry
from cron.runners import target_import_problem, validate_action, validate_cwd, validate_env
from cron.schedule import compute_next_run, parse_schedule, resolve_zone, to_iso
from cron.store import Job, Stored, Swap, get_store

T = TypeVar("T")

log = logging.getLogger(__name__)

EDITABLE = frozenset(
    {"name", "schedule", "action", "repeat", "enabled", "catch_up", "timeout", "tz", "retry"}
)

def _now(now: datetime | None) -> datetime:
    # No ``now``: the store's clock (a shared database's, SPEC §11), so node clocks
    # may drift without two nodes disagreeing about whether a claim is stale.
    if now is None:
        return get_store().clock()
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)
    return now.astimezone(UTC)


def add_change_listener(fn: Callable[[], None]) -> None:
    """Call ``fn()`` after every successful mutation in this process (``cron.changes.bus``)."""
    changes.bus.subscribe(fn)


def remove_change_listener(fn: Callable[[], None]) -> None:
    changes.bus.unsubscribe(fn)


def _notify_changed() -> None:
    # The mutation is already durable: the bus logs a failing listener, never raises.
    changes.bus.publish()


# Where a command runs (SPEC §14): optional, absent from jobs that do not set them.
WHERE_FIELDS = frozenset({"cwd", "env"})
EDITABLE = EDITABLE | WHERE_FIELDS

# -- validation -------------------------------------------------------------


def _validate_tz(tz: object) -> str | None:
    if tz is None or tz == "":
        return None
    if not isinstance(tz, str):
        raise TimeZoneError(tz, "a time zone must be an IANA name such as 'Europe/Berlin'")
    resolve_zone(tz)  # raises TimeZoneError for an unknown zone
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


def _check_where(action: dict[str, Any], env: dict[str, str] | None) -> None:
    if env and action.get("kind") == "python":
        # Threads share one process environment: it could not be applied per run.
        raise JobValueError(
            "env", env, "applies to command jobs only; a python target runs inside the "
            "gateway's process and shares its environment"
        )


def _warn_unimportable(job: Job) -> None:
    """Log (WARNING) a python target that does not import here; the job stays.

    The gateway may import it from its own ``sys.path``, so this is not a
    reason to refuse the job; a malformed target is (``validate_action``).
    """
    action = job.get("action") or {}
    if action.get("kind") != "python":
        return
    problem = target_import_problem(str(action.get("target")), cwd=job.get("cwd"))
    if problem is not None:
        log.warning(
            "job %s: %s; added anyway: it runs if the gateway can import it", job["id"], problem
        )


def _first_run(schedule: dict[str, Any], now: datetime) -> datetime | None:
    if schedule["kind"] == "interval":
        return compute_next_run(schedule, after=now)
    return compute_next_run(schedule, after=now, tz=schedule.get("tz"))


def _new_id() -> str:
    return uuid.uuid4().hex[:12]


def json_copy(job: Job) -> Job:
    copied: Job = json.loads(json.dumps(job))
    return copied


def _encoded(job: Job) -> str:
    return json.dumps(job, sort_keys=True, separators=(",", ":"))


CAS_ATTEMPTS = 100
"""Bound on compare-and-set retries of one job; each loss means another writer won."""


def _cas(job_id: str, fn: Callable[[Job | None], T]) -> T:
    """Read the job, apply ``fn`` to the copy, swap it back if it changed; retry a lost swap.

    ``fn`` gets None for a missing job and may raise to abort (nothing is
    written). A lost swap means someone else changed the job in between: the
    rule is applied again to what they wrote, never to a stale copy.
    """
    store = get_store()
    for _ in range(CAS_ATTEMPTS):
        stored = store.get(job_id)
        if stored is None:
            return fn(None)
        job = stored.job
        before = _encoded(job)
        result = fn(job)
        if _encoded(job) == before:
            return result
        if store.swap(job_id, stored.rev, job) is not None:
            return result
    raise TimeoutError(f"job {job_id!r}: {CAS_ATTEMPTS} writers in a row changed it first")


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
) -> Job:
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
            schedule, action, key=key, name=name, repeat=repeat, enabled=enabled, tz=tz,
            catch_up=catch_up, timeout=timeout, retry=retry, now=now, cwd=cwd, env=env,
        ).job
    now = _now(now)
    v = _validated(schedule, action, tz=tz, name=name, repeat=repeat, catch_up=catch_up,
                   timeout=timeout, retry=retry, cwd=cwd, env=env, now=now)
    if not isinstance(enabled, bool):
        raise JobValueError("enabled", enabled, "expected true or false")
    return _insert_new(
        v.sched, v.act, key=None, name=v.name, repeat=v.times, enabled=enabled,
        catch_up=v.catch_up, timeout=v.timeout, retry=v.retry, cwd=v.cwd, env=v.env, now=now,
        text=schedule,
    )


@dataclass(frozen=True)
class _Validated:
    """A job's fields checked and normalised, before anything is written."""

    tz: str | None
    sched: dict[str, Any]
    act: dict[str, Any]
    name: str
    times: int | None
    catch_up: str | None
    timeout: float | None
    retry: dict[str, Any] | None
    cwd: str | None
    env: dict[str, str] | None


def _validated(
    schedule: str | dict[str, Any],
    action: str | dict[str, Any],
    *,
    tz: str | None,
    name: str | None,
    repeat: int | dict[str, Any] | None,
    catch_up: str | None,
    timeout: float | None,
    retry: int | dict[str, Any] | None,
    cwd: str | None,
    env: dict[str, str] | None,
    now: datetime,
) -> _Validated:
    """Every check ``create_job`` and ``declare_job`` share; raises on the first bad field."""
    zone = _validate_tz(
        tz if tz is not None else (schedule.get("tz") if isinstance(schedule, dict) else None)
    )
    sched = parse_schedule(schedule, tz=zone, now=now)
    if zone:
        sched["tz"] = zone
    act = validate_action(action)
    work_dir, job_env = validate_cwd(cwd), validate_env(env)
    _check_where(act, job_env)
    return _Validated(
        tz=zone,
        sched=sched,
        act=act,
        times=_validate_repeat(repeat, sched["kind"])["times"],
        catch_up=_validate_catch_up(catch_up),
        timeout=_validate_timeout(timeout),
        retry=validate_retry(retry),
        name=_validate_name(name) if name is not None else _default_name(act),
        cwd=work_dir,
        env=job_env,
    )


# -- declared jobs (SPEC §14) ------------------------------------------------------

KEY_MAX_CHARS = 200


def validate_key(key: object) -> str:
    """A job key: a non-empty line of at most 200 characters, no surrounding spaces."""
    if (not isinstance(key, str) or not key or key != key.strip() or len(key) > KEY_MAX_CHARS
            or any(ord(c) < 32 for c in key)):
        raise JobValueError(
            "key", key, f"expected a non-empty single line of at most {KEY_MAX_CHARS} "
            "characters, without surrounding spaces")
    return key


@dataclass(frozen=True)
class Declared:
    """What :func:`declare_job` did (or, with ``dry_run``, would do) to the job with a key."""

    verdict: str
    """``created`` | ``updated`` | ``unchanged``."""
    job: Job
    """The job as stored afterwards (``dry_run``: as it would be; a new one has id ``""``)."""
    changed: tuple[str, ...] = ()
    """The fields an update changed."""


def _declared_changes(
    existing: Job,
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
    for field_name, value in (("catch_up", catch_up), ("timeout", timeout), ("retry", retry),
                              ("cwd", cwd), ("env", env)):
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
    v = _validated(schedule, action, tz=tz, name=name, repeat=repeat, catch_up=catch_up,
                   timeout=timeout, retry=retry, cwd=cwd, env=env, now=now)
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
                return Declared("created", {"id": "", "key": key, "name": job_name,
                                            "schedule": sched, "action": act})
            try:
                job = _insert_new(
                    sched, act, key=key, name=job_name, repeat=times,
                    enabled=True if enabled is None else enabled, catch_up=catch,
                    timeout=tmo, retry=rty, now=now, cwd=work_dir, env=job_env,
                )
            except DuplicateJobError as exc:
                if exc.field != "key":
                    raise
                continue  # another writer declared it first: update theirs instead
            return Declared("created", job)
        changes = _declared_changes(
            found.job, sched=sched, schedule=schedule, tz=tz, act=act, name=job_name,
            repeat_times=times, enabled=enabled, catch_up=catch, timeout=tmo, retry=rty,
            cwd=work_dir, env=job_env,
        )
        if not changes:
            return Declared("unchanged", found.job)
        fields = tuple(sorted(k for k in changes if k != "tz" or "schedule" not in changes))
        if dry_run:
            return Declared("updated", found.job, fields)
        return Declared("updated", update_job(found.job["id"], now=now, **changes), fields)
    raise TimeoutError(f"key {key!r}: {CAS_ATTEMPTS} writers in a row changed it first")


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
) -> Job:
    """Insert a new job from already validated fields (a fresh id; with ``key``, a duplicate
    key raises :class:`DuplicateJobError` from the store: an insert never overwrites)."""
    next_run = _first_run(sched, now)
    if next_run is None:
        raise ScheduleError(text if text is not None else sched.get("display"),
                            "that time is in the past")
    job: Job = {"id": ""}
    if key is not None:
        job["key"] = key
    job.update({
        "name": name,
        "schedule": sched,
        "action": act,
        "repeat": {"times": repeat, "completed": 0},
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
    })
    # Optional fields are absent, not null, when unset (the goldens pin that).
    for field_name, value in (("catch_up", catch_up), ("timeout", timeout), ("cwd", cwd),
                              ("env", env), ("retry", retry)):
        if value is not None:
            job[field_name] = value
    store = get_store()
    while True:
        job["id"] = _new_id()
        try:
            store.insert(job)
            break
        except DuplicateJobError as exc:
            if exc.field != "id":
                raise
    _record_event("create", job, now)
    _notify_changed()
    _warn_unimportable(job)
    return job


def find_job_by_key(key: str) -> Job | None:
    """The job declared with ``key``, or None."""
    found = get_store().find_key(key)
    return found.job if found is not None else None


def get_job(job_id: str) -> Job | None:
    stored = get_store().get(job_id)
    return stored.job if stored is not None else None


def list_jobs(*, include_disabled: bool = True) -> list[Job]:
    jobs = [s.job for s in get_store().scan()]
    if include_disabled:
        return jobs
    return [j for j in jobs if rules.is_active(j)]


def _mutate(job_id: str, fn: Callable[[Job], None], *, at: datetime) -> Job:
    seen: list[Job] = []  # the job as the winning attempt found it

    def apply(job: Job | None) -> Job:
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


def _event_kind(before: Job, after: Job) -> str:
    was, now = before.get("state"), after.get("state")
    if was != "paused" and now == "paused":
        return "pause"
    if was == "paused" and now != "paused":
        return "resume"
    return "edit"


def _record_event(kind: str, job: Job, at: datetime, before: Job | None = None) -> None:
    # The audit's record of when the job was owed slots (best-effort, never raises).
    from cron.executions import record_job_event

    record_job_event(kind, job, at=at, before=before)


def update_job(job_id: str, *, now: datetime | None = None, **changes: Any) -> Job:
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

    def apply(job: Job) -> None:
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

    return _mutate(job_id, apply, at=at)


def resume_job(job_id: str, *, now: datetime | None = None) -> Job:
    """Fire again, from the next slot after ``now``: no burst of the runs missed while paused."""
    at = _now(now)

    def apply(job: Job) -> None:
        if job.get("state") == "completed":
            raise JobValueError("state", "completed", "a completed job cannot be resumed")
        if job.get("state") != "scheduled" or not job.get("enabled", True):
            _resume_in_place(job, at)

    return _mutate(job_id, apply, at=at)


def get_due_jobs(now: datetime | None = None) -> list[Job]:
    """Enabled, scheduled jobs whose ``next_run_at <= now`` (a snapshot; claims decide)."""
    at = _now(now)
    out = []
    for stored in get_store().scan(due_by=at):
        job = stored.job
        due = rules.parse_ts(job.get("next_run_at"))
        if rules.is_active(job) and due is not None and due <= at:
            out.append(job)
    return out


# -- the claim ----------------------------------------------------------------


def _event_rows(events: list[rules.LedgerEvent], source: str, at: str) -> list[LedgerRow]:
    owner = owner_id()
    return [
        LedgerRow(secrets.token_hex(16), ev.job_id, ev.status, ev.scheduled_at, at, source, owner,
                  ev.job_name, ev.error)
        for ev in events
    ]


def _claim_row(job: Job, token: str, source: str, at: str) -> LedgerRow:
    claim = job["fire_claim"]
    return LedgerRow(token, job["id"], "claimed", claim["scheduled_at"], at, source,
                     claim["by"], job.get("name"))


def claim_job_for_fire(
    job_id: str,
    *,
    scheduled_at: datetime | str | None = None,
    now: datetime | None = None,
    force: bool = False,
    source: str = "manual",
) -> str | None:
    """Give one due slot of ``job_id`` to exactly one caller: a compare-and-set on the job.

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

    On success, in one store write: ``fire_claim`` is stamped (``token``,
    ``at``, ``by`` = ``host:pid:start``, ``scheduled_at``), the fired slot is
    recorded in ``last_scheduled_at``, ``repeat.completed`` is incremented and
    ``next_run_at`` advances to the first slot strictly after ``now`` (null
    once spent). Advancing before the run means a crash mid-run loses at most
    one run and never repeats one. A ``scheduled_at`` later than
    ``next_run_at`` but not after ``now`` claims that slot and the slots passed
    over are recorded ``missed`` in the ledger. The ledger row (id = token,
    status ``claimed``, ``source``) rides on the same swap: on a database
    store it commits in the same transaction.

    How: read the job and its revision, apply :func:`cron.claim.try_claim` to
    the copy, swap it back only if the revision is unchanged. A caller whose
    swap loses re-reads and applies the rule to what the winner wrote — where
    it finds the winner's live claim and gets None.
    """
    return claim_job_for_fire_ex(
        job_id, scheduled_at=scheduled_at, now=now, force=force, source=source
    ).token


def _claim_settings() -> tuple[float, str]:
    cfg = read_config()
    return (
        float(cfg_get(cfg, "cron", "claim_ttl", default=300)),
        str(cfg_get(cfg, "cron", "catch_up", default="once")),
    )


def claim_job_for_fire_ex(
    job_id: str,
    *,
    scheduled_at: datetime | str | None = None,
    now: datetime | None = None,
    force: bool = False,
    source: str = "manual",
) -> rules.ClaimOutcome:
    """:func:`claim_job_for_fire`, returning the outcome with its reason (``outcome.code``)."""
    at = _now(now)
    slot: datetime | None
    if isinstance(scheduled_at, str):
        slot = rules.parse_ts(scheduled_at)
    else:
        slot = _now(scheduled_at) if scheduled_at is not None else None
    ttl, catch_default = _claim_settings()
    owner = owner_id()
    stamp = to_iso(at)
    store = get_store()
    for _ in range(CAS_ATTEMPTS):
        stored = store.get(job_id)
        job = stored.job if stored is not None else None
        outcome = rules.try_claim(
            job, now=at, claim_ttl=ttl, catch_up_default=catch_default, owner=owner,
            scheduled_at=slot, force=force,
        )
        if not outcome.won or stored is None or job is None:
            if stored is not None:
                metrics.observe_claim_lost(job_id)
            return outcome
        assert outcome.token is not None
        rows = (_claim_row(job, outcome.token, source, stamp),
                *_event_rows(outcome.events, source, stamp))
        if store.swap_many([Swap(job_id, stored.rev, job, rows)])[0] is not None:
            metrics.observe_rows(rows)
            return outcome
    raise TimeoutError(f"job {job_id!r}: {CAS_ATTEMPTS} writers in a row changed it first")


# What sweep_due returns when it left the job as it was (see cron.claim.sweep_due).
_SWEEP_UNCHANGED = frozenset(
    {rules.ClaimReason.NOT_SCHEDULED, rules.ClaimReason.NO_NEXT_RUN, rules.ClaimReason.NOT_DUE}
)


def _sweep(
    stored: Stored, *, at: datetime, ttl: float, catch_default: str, owner: str, source: str,
) -> tuple[Swap | None, str | None, bool]:
    """The tick's rule for one job: ``(swap to make or None, token if fired, completed?)``."""
    job = stored.job
    was = job.get("state")
    outcome = rules.sweep_due(job, now=at, claim_ttl=ttl, catch_up_default=catch_default,
                              owner=owner)
    if outcome.code in _SWEEP_UNCHANGED:
        return None, None, False
    stamp = to_iso(at)
    rows = _event_rows(outcome.events, source, stamp)
    if outcome.token is not None:
        rows.insert(0, _claim_row(job, outcome.token, source, stamp))
    completed = was != "completed" and job.get("state") == "completed"
    return Swap(job["id"], stored.rev, job, tuple(rows)), outcome.token, completed


def claim_due_jobs(now: datetime | None = None, *, source: str = "tick") -> list[tuple[Job, str]]:
    """The tick's batch claim: :func:`claim_job_for_fire` semantics for every due job.

    Applies :func:`cron.claim.sweep_due` to each job the store lists as due
    (fire, overlap → ``skipped``, beyond grace → ``missed`` or fire once,
    one-shot 120 s) and writes every change with one ``swap_many`` — one file
    write on json, one transaction on a database, the ledger rows included.
    A job whose swap lost (another node or writer changed it first) is read
    again and swept again. Returns ``(job, token)`` for each job this caller
    must run; the job dict carries its claim.
    """
    at = _now(now)
    store = get_store()
    wake = store.next_wake()
    if wake is None or wake > at:
        return []  # idle: nothing can be due; one indexed look, no lock
    ttl, catch_default = _claim_settings()
    owner = owner_id()
    won: list[tuple[Job, str]] = []
    completed = False
    candidates = store.scan(due_by=at)
    for _ in range(CAS_ATTEMPTS):
        planned = [
            _sweep(s, at=at, ttl=ttl, catch_default=catch_default, owner=owner, source=source)
            for s in candidates
        ]
        todo = [(swap, token, done) for swap, token, done in planned if swap is not None]
        if not todo:
            break
        results = store.swap_many([swap for swap, _, _ in todo])
        lost: list[str] = []
        for (swap, token, done), result in zip(todo, results, strict=True):
            if result is None:
                lost.append(swap.job_id)
                continue
            completed = completed or done
            metrics.observe_rows(swap.rows)
            if token is not None:
                won.append((swap.new, token))  # ours: a store keeps no reference to it
        if not lost:
            break
        candidates = [s for s in (store.get(job_id) for job_id in lost) if s is not None]
    if completed:
        _notify_changed()
    return won


def _apply_results(
    results: Sequence[tuple[str, str, str, str | None]], at: datetime
) -> list[tuple[bool, bool]]:
    """Apply run results, fenced by token, in one ``swap_many`` (re-read on a lost swap).

    Returns ``(applied, completed)`` per result.
    """
    store = get_store()
    out: list[tuple[bool, bool]] = [(False, False)] * len(results)
    pending = list(range(len(results)))
    for _ in range(CAS_ATTEMPTS):
        which: list[int] = []
        # Results for the same job in one batch are applied to one copy, in order.
        current: dict[str, tuple[Stored | None, Job | None]] = {}
        for i in pending:
            job_id, token, status, error = results[i]
            if job_id not in current:
                stored = store.get(job_id)
                current[job_id] = (stored, stored.job if stored is not None else None)
            stored, job = current[job_id]
            if stored is None or job is None:
                continue
            was = job.get("state")
            if rules.apply_run_result(job, token, now=at, status=status, error=error):
                out[i] = (True, was != "completed" and job.get("state") == "completed")
                which.append(i)
        changed = {results[i][0] for i in which}
        by_job: dict[str, Swap] = {}
        for job_id, (stored, job) in current.items():
            if stored is not None and job is not None and job_id in changed:
                by_job[job_id] = Swap(job_id, stored.rev, job)
        if not by_job:
            return out
        won = dict(zip(by_job, store.swap_many(list(by_job.values())), strict=True))
        lost = {job_id for job_id, result in won.items() if result is None}
        if not lost:
            return out
        pending = [i for i in which if results[i][0] in lost]
        for i in pending:
            out[i] = (False, False)
    raise TimeoutError(f"{CAS_ATTEMPTS} writers in a row changed these jobs first")


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
    ``failure_streak`` are set; a spent job becomes ``completed``. The write is
    a compare-and-set on the job, so a result racing a claim or another
    result is applied to what that writer left, or not at all.
    """
    status = status or ("ok" if success else "error")
    [(applied, completed)] = _apply_results([(job_id, token, status, error)], _now(now))
    if completed:
        # The set of jobs that can fire shrank: external providers must hear it.
        _notify_changed()
    return applied


def mark_job_runs(
    results: list[tuple[str, str, str, str | None]], *, now: datetime | None = None
) -> list[bool]:
    """:func:`mark_job_run` for many runs in one ``swap_many``.

    ``results`` are ``(job_id, token, status, error)``; returns, per entry,
    whether it applied (same compare as :func:`mark_job_run`).
    """
    if not results:
        return []
    out = _apply_results(results, _now(now))
    if any(done for _, done in out):
        _notify_changed()
    return [applied for applied, _ in out]


def claim_retry(
    job_id: str,
    token: str,
    *,
    attempt: int,
    start_at: datetime,
    now: datetime | None = None,
    source: str = "tick",
) -> tuple[rules.RetryClaim, str | None, Job | None]:
    """Pass the claim ``token`` holds to attempt ``attempt`` of its slot (``rules.retry_claim``).

    One compare-and-set; the attempt's ``claimed`` ledger row (id = the new
    token, ``attempt`` set) rides on the same swap. Returns the verdict, the
    new token and the job as written (None unless granted).
    """
    at = _now(now)
    stamp = to_iso(at)
    store = get_store()
    for _ in range(CAS_ATTEMPTS):
        stored = store.get(job_id)
        job = stored.job if stored is not None else None
        verdict, new = rules.retry_claim(job, token, now=at, start_at=start_at, attempt=attempt)
        if new is None or stored is None or job is None:
            return verdict, None, None
        claim = job["fire_claim"]
        row = LedgerRow(new, job_id, "claimed", claim["scheduled_at"], stamp, source,
                        owner_id(), job.get("name"), attempt=attempt)
        if store.swap_many([Swap(job_id, stored.rev, job, (row,))])[0] is not None:
            return verdict, new, json_copy(job)
    raise TimeoutError(f"job {job_id!r}: {CAS_ATTEMPTS} writers in a row changed it first")


def retry_may_start(
    job_id: str, token: str, *, now: datetime | None = None
) -> tuple[rules.RetryClaim, Job | None]:
    """Whether the attempt waiting with ``token`` may start now, and the job as it is."""
    job = get_job(job_id)
    return rules.may_start_retry(job, token, now=_now(now)), job


def refresh_claims(held: Sequence[tuple[str, str]], *, now: datetime | None = None) -> list[bool]:
    """Re-date the live claims held by these ``(job_id, token)`` pairs in one ``swap_many``.

    Returns, per pair, whether the token still held the claim (False: the
    claim is gone — released, taken over, or the job removed).
    """
    at = _now(now)
    store = get_store()
    out = [False] * len(held)
    pending = list(range(len(held)))
    for _ in range(CAS_ATTEMPTS):
        swaps: list[Swap] = []
        idx: list[int] = []
        for i in pending:
            job_id, token = held[i]
            stored = store.get(job_id)
            if stored is not None and rules.refresh(stored.job, token, now=at):
                swaps.append(Swap(job_id, stored.rev, stored.job))
                idx.append(i)
        if not swaps:
            return out
        results = store.swap_many(swaps)
        pending = []
        for i, result in zip(idx, results, strict=True):
            if result is None:
                pending.append(i)
            else:
                out[i] = True
        if not pending:
            return out
    return out


def refresh_claim(job_id: str, token: str, *, now: datetime | None = None) -> bool:
    """Re-date the live claim held by ``token`` (called by running jobs every ``claim_ttl/3``)."""
    return refresh_claims([(job_id, token)], now=now)[0]


__all__ = [
    "add_change_listener",
    "claim_due_jobs",
    "claim_job_for_fire",
    "clear_ticker_error",
    "create_job",
    "declare_job",
    "find_job_by_key",
    "get_due_jobs",
    "get_job",
    "list_jobs",
    "mark_job_run",
    "pause_job",
    "read_ticker_heartbeat",
    "record_ticker_error",
    "record_ticker_heartbeat",
    "refresh_claim",
    "refresh_claims",
    "remove_change_listener",
    "remove_job",
    "resume_job",
    "update_job",
]
