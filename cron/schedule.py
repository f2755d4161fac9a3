"""Schedules: parsing, validation and next-fire computation (SPEC §2).

A schedule is a small JSON-able dict of one of three kinds::

    {"kind": "cron", "expr": "0 9 * * 1-5", "display": "0 9 * * 1-5"}   # + optional "tz"
    {"kind": "interval", "seconds": 1800, "display": "every 30m"}
    {"kind": "once", "run_at": "2026-12-01T08:00:00+00:00", "display": "once at ..."}

Every instant this module returns is timezone-aware UTC; every instant it
writes as text goes through :func:`to_iso`.

This module parses text and dicts into that form and computes the slots of a
schedule; it is the one callers import (every name of its ``__all__``). Below
it: :mod:`cron.cronexpr`, which validates cron expressions and walks their fire
instants with the DST and day-field rules of SPEC §2 (its docstring has them),
and :mod:`cron.zones`, instants, ISO text and the configured zone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from cron.cronexpr import (
    _FIELD_CHARS_RE,
    Schedule,
    _compile,
    _Cron,
    _next_cron,
    _normalise_cron_expr,
    seconds_per_minute,
    six_field_warning,
)
from cron.errors import ScheduleError, ScheduleTooLongError
from cron.zones import _aware_utc, _zone_from_name, _zone_key, parse_instant, resolve_zone, to_iso

__all__ = [
    "compute_next_run",
    "describe",
    "grace_seconds",
    "iter_slots",
    "next_slot",
    "parse_instant",
    "parse_schedule",
    "period_seconds",
    "resolve_zone",
    "seconds_per_minute",
    "six_field_warning",
    "to_iso",
]


KINDS = ("cron", "interval", "once")

GRACE_MIN = 120.0
GRACE_MAX = 7200.0

# Longer schedule text is refused before any parsing, so a pasted megabyte costs
# nothing and no error message quotes it whole.
MAX_SCHEDULE_CHARS = 1000

# An interval longer than this is almost certainly a typo, and capping it keeps
# every `after + interval` far away from datetime's year-9999 ceiling.
MAX_INTERVAL_SECONDS = 3650 * 86400


_UNIT_SECONDS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
    **dict.fromkeys(("w", "wk", "week", "weeks"), 7 * 86400),
}
# re.ASCII: int() would happily read Arabic-Indic digits, cron fields would not.
_DURATION_RE = re.compile(r"(?:[0-9]{1,12}\s*[a-z]+\s*)+", re.ASCII)
_DURATION_PART_RE = re.compile(r"([0-9]{1,12})\s*([a-z]+)", re.ASCII)
_EVERY_RE = re.compile(r"every\s+(.+)", re.ASCII | re.DOTALL)
_IN_RE = re.compile(r"in\s+(.+)", re.ASCII | re.DOTALL)


# --------------------------------------------------------------------------- parsing


def _parse_duration(text: str, original: object) -> int:
    low = text.strip().lower()
    if not _DURATION_RE.fullmatch(low):
        raise ScheduleError(original, "bad duration (use e.g. 90s, 30m, 2h, 1d or 1h30m)")
    total = 0
    seen: set[int] = set()
    for number, unit in _DURATION_PART_RE.findall(low):
        size = _UNIT_SECONDS.get(unit)
        if size is None:
            raise ScheduleError(original, f"unknown duration unit {unit!r} (use s, m, h, d, w)")
        if size in seen:
            raise ScheduleError(original, f"duration unit {unit!r} given twice")
        seen.add(size)
        total += int(number) * size
    if total < 1:
        raise ScheduleError(original, "interval must be at least 1 second")
    if total > MAX_INTERVAL_SECONDS:
        raise ScheduleError(original, "interval longer than 3650 days")
    return total


def _format_duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _cron_schedule(expr: str, original: object, tz_key: str | None) -> Schedule:
    norm = _normalise_cron_expr(expr)
    if not norm:
        raise ScheduleError(original, "empty cron expression")
    try:
        _compile(norm)
    except ScheduleError as exc:
        raise ScheduleError(original, exc.reason) from None
    out: Schedule = {"kind": "cron", "expr": norm, "display": norm}
    if tz_key:
        out["tz"] = tz_key
    return out


def _interval_schedule(seconds: int) -> Schedule:
    return {"kind": "interval", "seconds": seconds, "display": f"every {_format_duration(seconds)}"}


def _once_schedule(run_at: datetime) -> Schedule:
    iso = to_iso(run_at)
    return {"kind": "once", "run_at": iso, "display": f"once at {iso}"}


def _parse_text(
    text: str, tz: str | tzinfo | None, now: datetime | None, original: object
) -> Schedule:
    stripped = text.strip()
    if not stripped:
        raise ScheduleError(original, "empty schedule")
    low = stripped.lower()
    if low.startswith("@"):
        return _cron_schedule(stripped, original, _zone_key(tz))
    every = _EVERY_RE.fullmatch(low)
    if every:
        return _interval_schedule(_parse_duration(every.group(1), original))
    once_in = _IN_RE.fullmatch(low)
    if once_in:
        delta = _parse_duration(once_in.group(1), original)
        base = _aware_utc(now) if now is not None else datetime.now(UTC)
        return _once_schedule(base + timedelta(seconds=delta))
    if _DURATION_RE.fullmatch(low):
        return _interval_schedule(_parse_duration(low, original))
    fields = stripped.split()
    if len(fields) in (5, 6) or (
        len(fields) > 2 and all(_FIELD_CHARS_RE.fullmatch(f.lower()) for f in fields)
    ):
        # Also route 3-, 4- and 7+-field lookalikes here, so the error names the
        # field count instead of a vague "not recognised".
        return _cron_schedule(stripped, original, _zone_key(tz))
    if stripped[:1].isdigit():
        try:
            when = datetime.fromisoformat(stripped)
        except ValueError:
            pass
        else:
            return _once_schedule(parse_instant(when, tz=tz))
    raise ScheduleError(original, "not a recognised schedule")


def _dict_seconds(value: object, original: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScheduleError(original, "interval 'seconds' must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ScheduleError(original, "interval 'seconds' must be a whole number")
        value = int(value)
    if value < 1:
        raise ScheduleError(original, "interval must be at least 1 second")
    if value > MAX_INTERVAL_SECONDS:
        raise ScheduleError(original, "interval longer than 3650 days")
    return value


def _parse_dict(data: dict[Any, Any], tz: str | tzinfo | None) -> Schedule:
    for key in ("expr", "run_at", "tz"):
        _check_length(data.get(key))
    kind = data.get("kind")
    if kind not in KINDS:
        raise ScheduleError(data, f"'kind' must be one of {', '.join(KINDS)}")
    zone_name = data.get("tz")
    if isinstance(zone_name, str) and not zone_name.strip():
        zone_name = None  # "" is how a CLI default or a cleared field says "no zone"
    if zone_name is not None:
        if not isinstance(zone_name, str) or _zone_from_name(zone_name.strip()) is None:
            raise ScheduleError(data, f"unknown time zone {zone_name!r}")
        zone_name = zone_name.strip()
    read_tz: str | tzinfo | None = zone_name or tz
    out: Schedule
    if kind == "cron":
        expr = data.get("expr")
        if not isinstance(expr, str):
            raise ScheduleError(data, "cron schedule needs an 'expr' string")
        out = _cron_schedule(expr, data, zone_name or _zone_key(tz))
    elif kind == "interval":
        out = _interval_schedule(_dict_seconds(data.get("seconds"), data))
    else:
        run_at = data.get("run_at")
        if not isinstance(run_at, (str, datetime)):
            raise ScheduleError(data, "one-shot schedule needs a 'run_at' timestamp")
        try:
            when = parse_instant(run_at, tz=read_tz)
        except ScheduleError as exc:
            raise ScheduleError(data, exc.reason) from None
        out = _once_schedule(when)
    if zone_name and "tz" not in out:
        out["tz"] = zone_name
    return out


def _check_length(text: object) -> None:
    if isinstance(text, str) and len(text) > MAX_SCHEDULE_CHARS:
        raise ScheduleTooLongError(text, MAX_SCHEDULE_CHARS)


def parse_schedule(
    text: str | dict[str, Any],
    *,
    tz: str | tzinfo | None = None,
    now: datetime | None = None,
) -> Schedule:
    """Parse schedule text (or re-validate a schedule dict) into its stored form.

    Text forms: 5-/6-field cron (seconds last), ``@hourly @daily @weekly
    @monthly @yearly @annually @midnight``; ``every 90s``/``every 1h30m`` or a
    bare ``30m`` (units s, m, h, d, w); ``in 30m`` (a one-shot ``now`` + 30 min,
    ``now`` defaulting to the current UTC time); an ISO-8601 timestamp (naive:
    read in ``tz``, else the configured zone).

    A dict must have ``kind`` cron/interval/once with its field (``expr``,
    ``seconds``, ``run_at``) and may carry ``tz`` (an IANA name); a normalised
    copy is returned, unknown keys dropped and ``display`` recomputed.

    When ``tz`` is an IANA name (or a keyed ZoneInfo) and the schedule is cron
    without its own ``tz``, the name is recorded as ``tz``: the expression is
    meant to be read on that wall clock.

    Text (and a dict's ``expr``/``run_at``/``tz``) longer than
    :data:`MAX_SCHEDULE_CHARS` is refused with :class:`ScheduleTooLongError`,
    whose message quotes only its first characters.

    Raises :class:`ScheduleError` - and nothing else, whatever the input - when
    the input is not a schedule that can fire; the message quotes the input.
    """
    try:
        if isinstance(text, str):
            _check_length(text)
            return _parse_text(text, tz, now, text)
        if isinstance(text, dict):
            return _parse_dict(text, tz)
        raise ScheduleError(text, "expected a schedule string or dict")
    except ScheduleError:
        raise
    except Exception as exc:
        # The contract is "ScheduleError or a schedule", for any input at all.
        raise ScheduleError(text, f"cannot parse ({type(exc).__name__}: {exc})") from None


# --------------------------------------------------------------------------- next runs


def _schedule_zone(schedule: Schedule, tz: str | tzinfo | None) -> tzinfo:
    own = schedule.get("tz")
    if isinstance(own, str) and own.strip():
        return resolve_zone(own)
    return resolve_zone(tz)


def _expr_of(schedule: Schedule) -> _Cron:
    expr = schedule.get("expr")
    if not isinstance(expr, str):
        raise ScheduleError(schedule, "cron schedule needs an 'expr' string")
    return _compile(_normalise_cron_expr(expr))


def _run_at_of(schedule: Schedule) -> datetime:
    run_at = schedule.get("run_at")
    if not isinstance(run_at, (str, datetime)):
        raise ScheduleError(schedule, "one-shot schedule needs a 'run_at' timestamp")
    own = schedule.get("tz")
    return parse_instant(run_at, tz=own if isinstance(own, str) and own else None)


def compute_next_run(
    schedule: Schedule, *, after: datetime, tz: str | tzinfo | None = None
) -> datetime | None:
    """The first fire instant strictly after ``after`` (aware UTC), or None.

    ``after`` should be aware; a naive one is taken as UTC.

    * once: ``run_at`` if it is after ``after``, else None (spent);
    * interval: ``after + seconds`` - callers anchor the series by passing the
      previous scheduled slot (see :func:`next_slot`), so it does not drift;
    * cron: matched on the wall clock of ``schedule["tz"]``, else ``tz``, else
      the configured zone, with the DST rules of the module docstring.
      None only when no fire is representable (beyond year 9999).

    Raises :class:`ScheduleError` for a malformed schedule.
    """
    after = _aware_utc(after)
    kind = schedule.get("kind")
    if kind == "cron":
        return _next_cron(_expr_of(schedule), after, _schedule_zone(schedule, tz))
    if kind == "interval":
        seconds = _dict_seconds(schedule.get("seconds"), schedule)
        try:
            return after + timedelta(seconds=seconds)
        except OverflowError:
            return None
    if kind == "once":
        run_at = _run_at_of(schedule)
        return run_at if run_at > after else None
    raise ScheduleError(schedule, f"'kind' must be one of {', '.join(KINDS)}")


def next_slot(
    schedule: Schedule,
    *,
    slot: datetime | None,
    now: datetime,
    tz: str | tzinfo | None = None,
) -> datetime | None:
    """The first slot of the series strictly after ``now``.

    interval: the series is ``slot, slot + s, slot + 2s, ...`` (``slot`` = the
    previous scheduled slot), so slots passed over while the host was down are
    skipped without shifting the phase; a ``slot`` still in the future is
    returned as is; with no ``slot``, ``now + s``. cron: ``compute_next_run(after=now)``.
    once: None - a one-shot has no further slot.
    """
    now = _aware_utc(now)
    kind = schedule.get("kind")
    if kind == "interval":
        seconds = _dict_seconds(schedule.get("seconds"), schedule)
        step = timedelta(seconds=seconds)
        if slot is None:
            return now + step
        anchor = _aware_utc(slot)
        if anchor > now:
            return anchor
        # Integer arithmetic on timedeltas: no float rounding, so no drift.
        return anchor + ((now - anchor) // step + 1) * step
    if kind == "cron":
        return compute_next_run(schedule, after=now, tz=tz)
    if kind == "once":
        return None
    raise ScheduleError(schedule, f"'kind' must be one of {', '.join(KINDS)}")


def iter_slots(
    schedule: Schedule,
    *,
    start: datetime,
    end: datetime,
    tz: str | tzinfo | None = None,
    limit: int = 1000,
) -> list[datetime]:
    """The slots ``s`` with ``start <= s <= end``, in order, at most ``limit`` of them.

    Interval series are anchored on ``start`` (``start`` itself is the first slot).
    """
    start, end = _aware_utc(start), _aware_utc(end)
    out: list[datetime] = []
    if limit <= 0 or end < start:
        return out
    kind = schedule.get("kind")
    if kind == "interval":
        step = timedelta(seconds=_dict_seconds(schedule.get("seconds"), schedule))
        current = start
        while current <= end and len(out) < limit:
            out.append(current)
            current += step
        return out
    if kind == "once":
        run_at = _run_at_of(schedule)
        return [run_at] if start <= run_at <= end else []
    if kind != "cron":
        raise ScheduleError(schedule, f"'kind' must be one of {', '.join(KINDS)}")
    zone = _schedule_zone(schedule, tz)
    cron = _expr_of(schedule)
    nxt = _next_cron(cron, start - timedelta(microseconds=1), zone)
    while nxt is not None and nxt <= end and len(out) < limit:
        out.append(nxt)
        nxt = _next_cron(cron, nxt, zone)
    return out


def period_seconds(
    schedule: Schedule, *, now: datetime | None = None, tz: str | tzinfo | None = None
) -> float | None:
    """Seconds between consecutive fires: the interval, or for cron the gap between
    the next two occurrences after ``now``; None for a one-shot."""
    kind = schedule.get("kind")
    if kind == "interval":
        return float(_dict_seconds(schedule.get("seconds"), schedule))
    if kind == "once":
        return None
    if kind != "cron":
        raise ScheduleError(schedule, f"'kind' must be one of {', '.join(KINDS)}")
    base = _aware_utc(now) if now is not None else datetime.now(UTC)
    first = compute_next_run(schedule, after=base, tz=tz)
    second = compute_next_run(schedule, after=first, tz=tz) if first is not None else None
    if first is None or second is None:
        return None
    return (second - first).total_seconds()


def grace_seconds(
    schedule: Schedule, *, now: datetime | None = None, tz: str | tzinfo | None = None
) -> float:
    """How late a fire may start and still count as on time: clamp(period/2, 120, 7200).

    A one-shot (no period) gets the minimum, 120 s.
    """
    period = period_seconds(schedule, now=now, tz=tz)
    if period is None:
        return GRACE_MIN
    return min(max(period / 2, GRACE_MIN), GRACE_MAX)


def describe(schedule: Schedule) -> str:
    """The human form of a schedule (its ``display``, recomputed if missing)."""
    display = schedule.get("display")
    if isinstance(display, str) and display:
        return display
    return str(parse_schedule(schedule)["display"])
