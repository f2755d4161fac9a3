"""How instants, durations and jobs read as text: shared by the CLI and ``explain``.

Below the CLI (no click, no output): :mod:`cron.explain` words its sentences with
these, and :mod:`cron.cli._format` re-exports them next to its echo helpers. Human
text shows instants in the configured zone with their UTC offset and a relative
time (``2026-11-25 09:00:00 +01:00 (in 4m)``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, tzinfo
from typing import Any

from cron.model import Job, JobDoc, parse_optional_ts


def one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def configured_zone() -> tzinfo:
    from cron.schedule import resolve_zone

    return resolve_zone()


def zone_name(zone: tzinfo) -> str:
    key = getattr(zone, "key", None)
    return str(key) if key else str(zone)


def to_dt(value: object) -> datetime | None:
    """An instant to show: a datetime (naive = UTC) or stored text; None for anything else.

    Unreadable text is None too — a display shows ``-``, it never fails on a bad field.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return parse_optional_ts(value)
    except ValueError:
        return None


def fmt_offset(dt: datetime) -> str:
    off = dt.utcoffset()
    total = int(off.total_seconds()) if off is not None else 0
    sign = "+" if total >= 0 else "-"
    hours, minutes = divmod(abs(total) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def fmt_duration(seconds: float) -> str:
    """``4s``, ``4m 10s``, ``45m``, ``2h 5m``, ``3d 4h``."""
    s = int(round(abs(seconds)))
    if s < 60:
        return f"{s}s"
    minutes, sec = divmod(s, 60)
    if minutes < 10:
        return f"{minutes}m {sec}s" if sec else f"{minutes}m"
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def fmt_relative(dt: datetime, now: datetime | None = None) -> str:
    """``in 4m`` / ``3s ago`` / ``now``."""
    ref = now if now is not None else datetime.now(UTC)
    delta = (dt - ref).total_seconds()
    if abs(delta) < 0.5:
        return "now"
    return f"in {fmt_duration(delta)}" if delta > 0 else f"{fmt_duration(delta)} ago"


def fmt_time(
    value: object,
    *,
    now: datetime | None = None,
    zone: tzinfo | None = None,
    relative: bool = True,
    empty: str = "-",
) -> str:
    """``2026-11-25 09:00:00 +01:00 (in 4m)`` in the configured zone."""
    dt = to_dt(value)
    if dt is None:
        return empty
    local = dt.astimezone(zone if zone is not None else configured_zone())
    text = f"{local:%Y-%m-%d %H:%M:%S} {fmt_offset(local)}"
    if relative:
        text += f" ({fmt_relative(dt, now)})"
    return text


def fmt_next_run(
    value: object, *, now: datetime | None = None, zone: tzinfo | None = None, empty: str = "-"
) -> str:
    """:func:`fmt_time` for a next run; one already in the past is flagged ``overdue``."""
    text = fmt_time(value, now=now, zone=zone, empty=empty)
    dt = to_dt(value)
    ref = now if now is not None else datetime.now(UTC)
    if dt is not None and (ref - dt).total_seconds() >= 1:
        text = text[:-1] + ", overdue)"
    return text


def age(seconds: float | None) -> str:
    return "never" if seconds is None else f"{fmt_duration(seconds)} ago"


def action_text(action: dict[str, Any]) -> str:
    kind = action.get("kind")
    if kind == "command":
        return str(action.get("command"))
    if kind == "python":
        return f"python {action.get('target')}"
    return f"{kind}: {json.dumps({k: v for k, v in action.items() if k != 'kind'})}"


def schedule_text(job: Job | JobDoc) -> str:
    sched = job.get("schedule") or {}
    text = str(sched.get("display") or sched.get("expr") or sched)
    if sched.get("tz"):
        text += f" ({sched['tz']})"
    return text


def repeat_text(job: Job | JobDoc) -> str:
    rep = job.get("repeat") or {}
    done = int(rep.get("completed") or 0)
    times = rep.get("times")
    return f"{done} of {times}" if times else f"{done} (forever)"


def job_label(job: Job | JobDoc) -> str:
    return f"{job['id']} ({job.get('name')})"


__all__ = [
    "action_text",
    "age",
    "configured_zone",
    "fmt_duration",
    "fmt_next_run",
    "fmt_offset",
    "fmt_relative",
    "fmt_time",
    "job_label",
    "one_line",
    "repeat_text",
    "schedule_text",
    "to_dt",
    "zone_name",
]
