"""Checking a job's fields before anything is written (SPEC §3, §14).

Every check :func:`cron.jobs.create_job`, :func:`cron.jobs.declare_job` and
:func:`cron.job_edits.update_job` make: each raises on the first bad field
(:class:`~cron.errors.JobValueError`, :class:`~cron.errors.ScheduleError`,
:class:`~cron.errors.TimeZoneError`), so bad input writes nothing. No I/O but
reading the zone database and, for a python target, trying its import.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cron.config import CATCH_UP_POLICIES
from cron.errors import JobValueError, TimeZoneError
from cron.model import JobDoc
from cron.retry import validate_retry
from cron.runners import target_import_problem, validate_action, validate_cwd, validate_env
from cron.schedule import parse_schedule, resolve_zone

# Logged under the job API's name: the gateway's log lines name it.
log = logging.getLogger("cron.jobs")

# Where a command runs (SPEC §14): optional, absent from jobs that do not set them.
WHERE_FIELDS = frozenset({"cwd", "env"})

EDITABLE = (
    frozenset(
        {"name", "schedule", "action", "repeat", "enabled", "catch_up", "timeout", "tz", "retry"}
    )
    | WHERE_FIELDS
)
"""What ``update_job`` changes (``tz`` is the schedule's zone); the rest is the claim's."""


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
            "env",
            env,
            "applies to command jobs only; a python target runs inside the "
            "gateway's process and shares its environment",
        )


def _warn_unimportable(job: JobDoc) -> None:
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


KEY_MAX_CHARS = 200


def validate_key(key: object) -> str:
    """A job key: a non-empty line of at most 200 characters, no surrounding spaces."""
    if (
        not isinstance(key, str)
        or not key
        or key != key.strip()
        or len(key) > KEY_MAX_CHARS
        or any(ord(c) < 32 for c in key)
    ):
        raise JobValueError(
            "key",
            key,
            f"expected a non-empty single line of at most {KEY_MAX_CHARS} "
            "characters, without surrounding spaces",
        )
    return key


__all__ = ["EDITABLE", "KEY_MAX_CHARS", "WHERE_FIELDS", "validate_key"]
