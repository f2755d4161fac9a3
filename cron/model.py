"""The data model every layer shares: a job's shape, its states, run statuses, time text.

A leaf module: it imports nothing from :mod:`cron`, so the pure rules
(:mod:`cron.claim`), the stores, the ledger and the CLI can all depend on it.

- :class:`Job` — a job as the store holds it (SPEC §3, §13, §14). A ``TypedDict``
  with ``total=False``: a job is a JSON object, so at run time it is a plain
  ``dict`` and optional fields are *absent*, not null (the goldens pin that).
- :class:`JobState` / :class:`RunStatus` — ``StrEnum``\\ s whose values are
  exactly the strings written to ``jobs.json`` and the ledger: a member *is*
  that string (``==``, ``json.dumps``, SQL parameters), so using one changes
  no byte on disk.
- :func:`format_ts` / :func:`parse_ts` — the one way an instant becomes text
  and back: ISO-8601 in UTC with an explicit ``+00:00``, microseconds only
  when non-zero.
- :func:`is_active` — the one test of "may a tick fire this job".
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, TypedDict


class JobState(enum.StrEnum):
    """A job's ``state`` (SPEC §3)."""

    SCHEDULED = "scheduled"
    PAUSED = "paused"
    COMPLETED = "completed"
    ERROR = "error"  # its stored schedule can produce no further slot


class RunStatus(enum.StrEnum):
    """A ledger row's ``status`` (SPEC §5); a job's ``last_status`` is one of the final ones."""

    CLAIMED = "claimed"
    RUNNING = "running"
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    UNKNOWN = "unknown"  # its owner died mid-run; never rerun
    MISSED = "missed"
    SKIPPED = "skipped"


LIVE_STATUSES = frozenset({RunStatus.CLAIMED, RunStatus.RUNNING})
"""A row whose run may still be going: it can still change."""

EVENT_STATUSES = frozenset({RunStatus.MISSED, RunStatus.SKIPPED})
"""A slot recorded without a run (passed over, or an overlap)."""

FINAL_STATUSES = frozenset(RunStatus) - LIVE_STATUSES
"""A row that is finished and never reopened (SPEC §13's "final outcome")."""

RAN_STATUSES = frozenset(RunStatus) - EVENT_STATUSES
"""A row for a slot that was claimed to run (finished or not)."""


class Job(TypedDict, total=False):
    """A job as the store holds it (SPEC §3, §13, §14); ``total=False``: see the module doc.

    Always present in a job ``create_job`` wrote: ``id`` … ``fire_claim``. Present only
    when set: ``key``, ``catch_up``, ``timeout``, ``retry``, ``cwd``, ``env``, ``deliver``.
    The nested objects stay ``dict[str, Any]`` because the schedule parser, the runners
    and the retry policy (which build and read them) take plain dicts; their shapes are
    given in the comments.
    """

    id: str  # 12 lowercase hex digits, immutable
    key: str  # a declared job's key (SPEC §14), unique in the store
    name: str
    # {"kind": "cron", "expr", "display", ["tz"]} | {"kind": "interval", "seconds", "display"}
    # | {"kind": "once", "run_at", "display", ["tz"]}
    schedule: dict[str, Any]
    # {"kind": "command", "command": sh} | {"kind": "python", "target": "pkg.mod:func"} | ...
    action: dict[str, Any]
    repeat: dict[str, Any]  # {"times": int | None, "completed": int}
    enabled: bool
    state: str  # a JobState value
    paused_at: str | None  # format_ts text, as every timestamp below
    paused_reason: str | None
    created_at: str
    next_run_at: str | None
    last_run_at: str | None
    last_scheduled_at: str | None
    last_status: str | None  # a final RunStatus value
    last_error: str | None
    failure_streak: int  # failed slots in a row, not attempts (SPEC §13)
    fire_claim: dict[str, Any] | None  # {"token", "at", "by", "scheduled_at", ["attempt"]}
    catch_up: str  # "once" | "skip"
    timeout: float  # seconds; 0 = no timeout
    retry: dict[str, Any]  # {"max": int, "backoff": float, "max_backoff": float}
    cwd: str  # a command's working directory (SPEC §14)
    env: dict[str, str]  # a command's extra environment (SPEC §14)
    deliver: list[str]  # the host's delivery adapters for the run's result


JobDoc = dict[str, Any]
"""A job as a store reads and writes it: the untyped JSON document behind the store seam
(:mod:`cron.stores`) and the modules built directly on it (the claim rules, the claim API,
the tick). The same object as a :class:`Job` at run time; those layers keep this type
until they are converted together, since mypy treats ``Job`` and ``dict[str, Any]`` as
unrelated types and every crossing would otherwise need a cast."""


def is_active(job: Job | JobDoc) -> bool:
    """Enabled and ``scheduled``: the only jobs a tick ever fires."""
    return bool(job.get("enabled", True)) and job.get("state") == JobState.SCHEDULED


def format_ts(dt: datetime) -> str:
    """ISO-8601 in UTC with an explicit ``+00:00``; microseconds only when non-zero.

    Naive input is taken to be UTC. ``parse_ts(format_ts(x)) == x`` for every aware ``x``
    that names a real instant (a wall time inside a DST gap names none).
    """
    utc = (
        dt.replace(tzinfo=UTC)
        if dt.tzinfo is None or dt.utcoffset() is None
        else dt.astimezone(UTC)
    )
    return utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds")


def parse_ts(text: str) -> datetime:
    """ISO-8601 text -> an aware UTC datetime; text without an offset is taken to be UTC.

    Raises :class:`ValueError` naming the text for anything else (a wall time in
    a configured zone is :func:`cron.zones.parse_instant`'s job, not this one's).
    """
    try:
        dt = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"not an ISO-8601 timestamp: {text!r}") from None
    tz = dt.tzinfo
    if tz is UTC:
        return dt  # what format_ts writes: the tick parses one per job, keep it cheap
    if tz is None or dt.utcoffset() is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def parse_optional_ts(value: object) -> datetime | None:
    """A stored timestamp field: None when unset (anything but a non-empty string, as a
    JSON null or an absent field), else :func:`parse_ts` — so a string that is not a
    timestamp still raises: a corrupt field is not "unset"."""
    if not isinstance(value, str) or not value:
        return None
    return parse_ts(value)


__all__ = [
    "EVENT_STATUSES",
    "FINAL_STATUSES",
    "LIVE_STATUSES",
    "RAN_STATUSES",
    "Job",
    "JobDoc",
    "JobState",
    "RunStatus",
    "format_ts",
    "is_active",
    "parse_optional_ts",
    "parse_ts",
]
