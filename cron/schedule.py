"""Schedules: parsing, validation and next-fire computation (SPEC §2).

A schedule is a small JSON-able dict of one of three kinds::

    {"kind": "cron", "expr": "0 9 * * 1-5", "display": "0 9 * * 1-5"}   # + optional "tz"
    {"kind": "interval", "seconds": 1800, "display": "every 30m"}
    {"kind": "once", "run_at": "2026-12-01T08:00:00+00:00", "display": "once at ..."}

Every instant this module returns is timezone-aware UTC; every instant it
writes as text goes through :func:`to_iso`.

Cron expressions are matched by croniter on *naive wall-clock* times of the
schedule's zone; mapping those wall times to instants is done here with
:mod:`zoneinfo`, because croniter's own DST handling skips or repeats fires
around transitions. The mapping follows the SPEC rules:

* a wall time inside a spring-forward gap fires once, at the transition
  instant (the first instant after the gap); several gap matches collapse;
* a wall time inside a fall-back fold fires on the first pass only, unless the
  hour field covers all 24 hours, in which case both passes fire.

Day-of-month and day-of-week combine as in Vixie cron (the daemon the
crontab provider hands lines to): when either field's text starts with ``*``
both must match, otherwise either may. croniter's own rule differs, so the
two fields are matched separately and combined here (see :class:`_Cron`).

Because each wall time maps to a fixed set of instants, the fire times form
one fixed, ordered set per (expression, zone): ``compute_next_run`` is the
successor function of that set, hence monotone, and a walk never repeats or
goes back.
"""

from __future__ import annotations

import functools
import math
import os
import re
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from cron.errors import ScheduleError, ScheduleTooLongError, TimeZoneError

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

Schedule = dict[str, Any]


KINDS = ("cron", "interval", "once")

GRACE_MIN = 120.0
GRACE_MAX = 7200.0

# Longer schedule text is refused before any parsing, so a pasted megabyte costs
# nothing and no error message quotes it whole.
MAX_SCHEDULE_CHARS = 1000

# An interval longer than this is almost certainly a typo, and capping it keeps
# every `after + interval` far away from datetime's year-9999 ceiling.
MAX_INTERVAL_SECONDS = 3650 * 86400

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

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

# Field order in a cron expression (croniter style: seconds, if present, last).
_FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week", "second")
_MONTH_NAMES = {
    name: i
    for i, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_DOW_NAMES = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_FIELD_CHARS_RE = re.compile(r"[0-9a-z*/,#?\-]+", re.ASCII)
_NAME_RE = re.compile(r"[a-z]{3}", re.ASCII)
_LONG_NUMBER_RE = re.compile(r"[0-9]{5,}", re.ASCII)
# Letters croniter gives a meaning to, per field, once month/day names are taken
# out: L (last) and W (nearest weekday) in day-of-month, L (last) in day-of-week.
# Everything else - notably Jenkins' H (hash) and croniter's R (random) - is
# rejected: a schedule must mean the same thing on every host and every load.
_EXTRA_LETTERS: dict[int, frozenset[str]] = {
    2: frozenset("lw"),
    4: frozenset("l"),
}

# Safety valve for the wall-clock scan; a real scan needs a handful of steps
# (up to a fold's worth of matches for every-second expressions).
_MAX_SCAN = 20_000

# How far ahead an AND of the two day fields looks for a day matching both: a
# whole Gregorian cycle, after which the calendar repeats, so nothing later can.
_AND_HORIZON = timedelta(days=146_097 + 366)
_ONE_SECOND = timedelta(seconds=1)


# --------------------------------------------------------------------------- time helpers


def _aware_utc(dt: datetime) -> datetime:
    """``dt`` as an aware UTC datetime; naive input is taken to be UTC already."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def to_iso(dt: datetime) -> str:
    """ISO-8601 in UTC with an explicit ``+00:00``; microseconds only when non-zero.

    Naive input is taken to be UTC. ``parse_instant(to_iso(x)) == x`` for every
    aware ``x``.
    """
    utc = _aware_utc(dt)
    return utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds")


def _wall_to_instants(wall: datetime, zone: tzinfo) -> tuple[datetime, datetime | None]:
    """Map a naive wall time in ``zone`` to its first instant and, in a fold, its second.

    A wall time inside a spring-forward gap maps to the transition instant (the
    first instant after the gap), so every gap time collapses onto one instant.
    Relies on PEP 495 semantics: ``fold=0`` uses the offset in force before a
    transition, ``fold=1`` the one after.
    """
    off0 = wall.replace(tzinfo=zone).utcoffset() or timedelta(0)
    off1 = wall.replace(tzinfo=zone, fold=1).utcoffset() or timedelta(0)
    first = (wall - off0).replace(tzinfo=UTC)
    if off0 == off1:
        return first, None
    second = (wall - off1).replace(tzinfo=UTC)
    if first < second:
        # Fold: the wall time really happens twice, fold=0 being the earlier pass.
        return first, second
    # Gap: `second` (new offset) lies before the transition, `first` after it.
    return _transition_between(zone, second, first), None


def _transition_between(zone: tzinfo, lo: datetime, hi: datetime) -> datetime:
    """The instant in ``(lo, hi]`` at which ``zone``'s offset changes.

    zoneinfo does not expose its transition table, so bisect on whole seconds
    (tzdata transitions are whole seconds); a gap is at most a few hours, so
    this is ~15 offset look-ups, twice a year per zone.
    """
    lo_s = math.floor(lo.timestamp())
    hi_s = math.ceil(hi.timestamp())
    before = datetime.fromtimestamp(lo_s, zone).utcoffset()
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == before:
            lo_s = mid
        else:
            hi_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


def _naive_in_zone_to_utc(naive: datetime, zone: tzinfo) -> datetime:
    """A naive wall time read in ``zone``: gap -> after the gap, fold -> first pass."""
    return _wall_to_instants(naive.replace(tzinfo=None), zone)[0]


def parse_instant(value: str | datetime, *, tz: str | tzinfo | None = None) -> datetime:
    """ISO-8601 text or a datetime -> aware UTC datetime.

    Naive values are wall times in ``tz`` (else the configured zone, see
    :func:`resolve_zone`); a wall time in a DST gap means the first instant after
    the gap, one in a fold means the first pass. Raises :class:`ScheduleError`
    for anything that is not a timestamp.
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ScheduleError(value, "not an ISO-8601 timestamp") from None
    else:
        raise ScheduleError(value, "expected an ISO-8601 string or a datetime")
    if dt.tzinfo is None or dt.utcoffset() is None:
        return _naive_in_zone_to_utc(dt, resolve_zone(tz))
    return dt.astimezone(UTC)


# --------------------------------------------------------------------------- zones


def _zone_from_name(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except Exception:
        # ZoneInfoNotFoundError, ValueError (paths, NUL bytes), IsADirectoryError,
        # ... - every flavour of "not a zone" is the same answer here.
        return None


def _system_zone() -> tzinfo | None:
    try:
        target = os.path.realpath("/etc/localtime")
        marker = "/zoneinfo/"
        if marker in target:
            zone = _zone_from_name(target.split(marker, 1)[1])
            if zone is not None:
                return zone
    except OSError:
        pass
    try:
        with open("/etc/timezone", encoding="utf-8") as fh:
            return _zone_from_name(fh.read().strip())
    except OSError:
        return None


def _env_zone() -> tzinfo | None:
    raw = os.environ.get("TZ", "").strip()
    if raw.startswith(":"):
        raw = raw[1:]
    if "/zoneinfo/" in raw:
        raw = raw.split("/zoneinfo/", 1)[1]
    return _zone_from_name(raw) if raw else None


def _fallback_zone(configured: str) -> tzinfo:
    if configured:
        zone = _zone_from_name(configured)
        if zone is not None:
            return zone
    return _env_zone() or _system_zone() or _zone_from_name("UTC") or UTC


_configured_cache: tuple[tuple[str | None, ...], str, tuple[int, ...], tzinfo] | None = None


def _configured_zone() -> tzinfo:
    """The zone from config.yaml / $TZ / the system, cached on the config file's stat.

    ``compute_next_run`` runs once per job per tick; re-reading and re-parsing
    YAML 100k times would dominate the tick, while a ``stat`` is cheap and still
    picks up an edited config at once.
    """
    global _configured_cache
    from cron import paths

    env = (os.environ.get("CRONKIT_HOME"), os.environ.get("HOME"), os.environ.get("TZ"))
    cached = _configured_cache
    # Building the path goes through pathlib (slow); it only changes with the env.
    path = cached[1] if cached is not None and cached[0] == env else str(paths.config_path())
    try:
        st = os.stat(path)
        stamp: tuple[int, ...] = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        stamp = ()
    if cached is not None and cached[0] == env and cached[2] == stamp:
        return cached[3]
    zone = _fallback_zone(_configured_name(None))
    _configured_cache = (env, path, stamp, zone)  # one tuple store: atomic, no lock
    return zone


def _configured_name(cfg: dict[str, Any] | None) -> str:
    from cron.config import cfg_get, load_config

    if cfg is None:
        try:
            cfg = load_config()
        except Exception:
            # A broken config.yaml is reported by whoever loads it for real; a
            # next-run computation must still answer, so fall through to $TZ.
            return ""
    name = cfg_get(cfg, "cron", "timezone", default="")
    return name.strip() if isinstance(name, str) else ""


def resolve_zone(name: str | tzinfo | None = None, cfg: dict[str, Any] | None = None) -> tzinfo:
    """The zone to read wall-clock times in.

    Order: ``name`` (an IANA name or a tzinfo, returned as is); config
    ``cron.timezone`` (``cfg``, else :func:`cron.config.load_config`, whose
    failure is ignored here); ``$TZ`` if it names an IANA zone; the system zone
    (``/etc/localtime`` link target, ``/etc/timezone``); UTC.

    Raises :class:`~cron.errors.TimeZoneError` (a ``ScheduleError``) only for
    an explicit ``name`` that is not a known zone.
    """
    if isinstance(name, tzinfo):
        return name
    if isinstance(name, str) and name.strip():
        zone = _zone_from_name(name.strip())
        if zone is None:
            raise TimeZoneError(name, "unknown time zone")
        return zone
    if name is not None and not isinstance(name, str):
        raise TimeZoneError(name, "time zone must be an IANA name or a tzinfo")
    if cfg is not None:
        return _fallback_zone(_configured_name(cfg))
    return _configured_zone()


def _zone_key(tz: str | tzinfo | None) -> str | None:
    """The IANA name to record on a schedule for ``tz``, if it has one."""
    if isinstance(tz, str) and tz.strip():
        resolve_zone(tz)  # validates
        return tz.strip()
    if isinstance(tz, ZoneInfo) and tz.key:
        return str(tz.key)
    return None


# --------------------------------------------------------------------------- cron


class _Cron:
    """A validated, pre-parsed cron expression, shared by every job that uses it.

    Day-of-month and day-of-week are combined here, not by croniter, because
    croniter's rule is not the daemon's. croniter ORs the two day fields unless
    one of them is ``*`` after expansion, and it turns a field covering every
    day into ``*`` only when the other field has a ``*`` anywhere in its text
    (so ``0 0 13 * */1`` fires daily and ``0 0 1-31 * 1,*/2`` skips Wednesdays
    and Fridays; Vixie fires the first on the 13th only and the second every
    day). Vixie cron (cron.c, ``DOM_STAR``/``DOW_STAR``) ANDs them when either
    field's text *starts with* ``*`` and ORs them otherwise. So croniter only ever sees
    expressions with at most one restricted day field - ``day_of_month`` (the
    day-of-week replaced by ``*``) and ``day_of_week`` (the day-of-month
    replaced by ``*``) - and :meth:`next_after` takes their union or their
    intersection.

    croniter objects are stateful (``get_next`` moves a cursor), so the shared
    iterators are only touched under the lock.
    """

    __slots__ = ("expr", "has_seconds", "all_hours", "day_rule", "_iters", "_lock")

    def __init__(
        self,
        expr: str,
        iters: tuple[croniter[datetime], ...],
        day_rule: str,
        has_seconds: bool,
    ) -> None:
        self.expr = expr
        self.has_seconds = has_seconds
        # "one": a single iterator decides; "or" / "and": the union / intersection of two.
        self.day_rule = day_rule
        hours = iters[0].expanded[1]
        self.all_hours = hours == ["*"] or len(set(hours)) == 24
        self._iters = iters
        self._lock = threading.Lock()

    def next_after(self, wall: datetime) -> datetime:
        """First naive wall time matching the expression strictly after ``wall``.

        Strict at the expression's resolution: croniter adds one minute (or
        second) and truncates, so callers wanting ">= x" pass ``x - 1s``.
        Raises ValueError (croniter's ``CroniterBadDateError``) or OverflowError
        when there is no such time.
        """
        with self._lock:
            if self.day_rule == "or":
                return self._union(wall)
            if self.day_rule == "and":
                return self._intersection(wall)
            return self._iters[0].get_next(datetime, start_time=wall)

    def _union(self, wall: datetime) -> datetime:
        found: list[datetime] = []
        failure: Exception | None = None
        for it in self._iters:
            try:
                found.append(it.get_next(datetime, start_time=wall))
            except (OverflowError, ValueError) as exc:
                failure = exc  # this side has no later match; the other may
        if not found:
            raise failure or CroniterBadDateError(f"no day matches {self.expr!r}")
        return min(found)

    def _intersection(self, wall: datetime) -> datetime:
        # Leapfrog: each side jumps to its first match at or after the other's
        # candidate until both agree. Both sides share the minute, hour, month
        # (and second) fields, so they agree on any day both match.
        dom, dow = self._iters
        try:
            horizon = wall + _AND_HORIZON
        except OverflowError:
            horizon = datetime.max
        candidate = dom.get_next(datetime, start_time=wall)
        while candidate <= horizon:
            other = dow.get_next(datetime, start_time=candidate - _ONE_SECOND)
            if other == candidate:
                return candidate
            candidate = dom.get_next(datetime, start_time=other - _ONE_SECOND)
        # e.g. the 1st, 9th, 17th or 25th that is a fifth Monday: no such day.
        raise CroniterBadDateError(f"no day matches both day fields of {self.expr!r}")


def _check_cron_field(index: int, field: str, text: object) -> str:
    """Validate one field; return it in the form handed to croniter."""
    name = _FIELD_NAMES[index]
    low = field.lower()
    if not _FIELD_CHARS_RE.fullmatch(low):
        raise ScheduleError(text, f"bad characters in the {name} field {field!r}")
    if _LONG_NUMBER_RE.search(low):
        raise ScheduleError(text, f"number out of range in the {name} field {field!r}")
    names = _MONTH_NAMES if index == 3 else _DOW_NAMES if index == 4 else {}
    stripped = _NAME_RE.sub(lambda m: "" if m.group(0) in names else m.group(0), low)
    letters = {c for c in stripped if c.isalpha()}
    if letters - _EXTRA_LETTERS.get(index, frozenset()):
        raise ScheduleError(text, f"unsupported syntax in the {name} field {field!r}")
    parts: list[str] = []
    for part in low.split(","):
        span = part.split("/", 1)[0]
        if "-" in span:
            ends = span.split("-", 1)
            lo, hi = (names.get(e, int(e) if e.isdigit() else None) for e in ends)
            if lo is not None and hi is not None:
                if lo > hi:
                    raise ScheduleError(text, f"reversed range {span!r} in the {name} field")
                if lo == hi:
                    # croniter reads a one-value range ("5-5", "5-5/2") as a wrap-around
                    # over the whole field; in cron it is just that one value.
                    part = ends[0]
        parts.append(part)
    return ",".join(parts)


def _day_star(field: str) -> bool:
    """Vixie's ``DOM_STAR``/``DOW_STAR``: the field's text starts with ``*``.

    ``?`` (croniter's and Quartz's "no specific value") is read as ``*``.
    """
    return field.startswith("*") or field == "?"


def _iterator(fields: Sequence[str], expr: str) -> croniter[datetime]:
    try:
        return croniter(" ".join(fields), datetime(2000, 1, 1), ret_type=datetime)
    except Exception as exc:
        raise ScheduleError(expr, f"bad cron expression ({exc})") from None


def _every_day(it: croniter[datetime], index: int) -> bool:
    """Does field ``index`` of ``it`` (its only restricted day field) match every day?"""
    return (
        it.expanded[index] == ["*"]
        and not it.nth_weekday_of_month
        and not it.nearest_weekday
    )


def _fires(it: croniter[datetime]) -> bool:
    try:
        it.get_next(datetime, start_time=datetime(2000, 1, 1))
    except (OverflowError, ValueError):
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _compile(expr: str) -> _Cron:
    """Parse and validate a normalised cron expression (cached: jobs share expressions)."""
    source = ALIASES.get(expr.lower(), expr) if expr.startswith("@") else expr
    if source.startswith("@"):
        raise ScheduleError(expr, f"unknown alias (known: {', '.join(ALIASES)})")
    fields = source.split()
    if len(fields) not in (5, 6):
        raise ScheduleError(expr, f"a cron expression has 5 or 6 fields, not {len(fields)}")
    fields = [_check_cron_field(i, field, expr) for i, field in enumerate(fields)]
    source = " ".join(fields)
    # The whole expression goes through croniter once, so it is validated as a
    # whole (e.g. '#' mixed with plain days); the iterators below carry one
    # restricted day field each.
    _iterator(fields, expr)
    by_dom = _iterator([*fields[:4], "*", *fields[5:]], expr)
    by_dow = _iterator([*fields[:2], "*", *fields[3:]], expr)
    rule = "and" if _day_star(fields[2]) or _day_star(fields[4]) else "or"
    iters: tuple[croniter[datetime], ...]
    if rule == "and" and _every_day(by_dom, 2):
        iters, rule = (by_dow,), "one"
    elif rule == "and" and _every_day(by_dow, 4):
        iters, rule = (by_dom,), "one"
    elif rule == "or" and (_every_day(by_dom, 2) or _every_day(by_dow, 4)):
        # One field matches every day, so either-matches is every day.
        every = [*fields[:2], "*", fields[3], "*", *fields[5:]]
        iters, rule = (_iterator(every, expr),), "one"
    elif rule == "or":
        # A side that can never match (the 31st of February) adds nothing.
        iters = tuple(it for it in (by_dom, by_dow) if _fires(it)) or (by_dom,)
        rule = "or" if len(iters) == 2 else "one"
    else:
        iters = (by_dom, by_dow)
    cron = _Cron(source, iters, rule, has_seconds=len(fields) == 6)
    try:
        # An expression that parses but can never match (Feb 30) would make every
        # later next-run computation fail; refuse it up front.
        first = cron.next_after(datetime(2000, 1, 1))
        cron.next_after(first)
    except Exception:
        raise ScheduleError(expr, "never fires (no date matches all fields)") from None
    return cron


def _normalise_cron_expr(expr: str) -> str:
    text = " ".join(expr.split())
    return text.lower() if text.startswith("@") else text


@functools.lru_cache(maxsize=16384)
def _next_cron(cron: _Cron, after: datetime, zone: tzinfo) -> datetime | None:
    """Smallest fire instant of ``cron`` in ``zone`` strictly after ``after`` (UTC).

    Memoised: a tick advancing many jobs that share an expression and a slot
    (every ``0 * * * *`` job at the top of the hour) computes it once. The
    result is a pure function of its (immutable, hashable) arguments.
    """
    best: datetime | None = None
    try:
        local = after.astimezone(zone)
        start = local.replace(tzinfo=None, fold=0)
        if cron.all_hours and local.fold == 0:
            # `after` may sit in the first pass of a fold; the second pass of wall
            # times *before* it is still ahead, so scan from the fold's start.
            now_off = local.utcoffset()
            other_off = local.replace(fold=1).utcoffset()
            if now_off is not None and other_off is not None and other_off < now_off:
                start -= now_off - other_off
        wall = cron.next_after(start - timedelta(seconds=1))
        for _ in range(_MAX_SCAN):
            first, second = _wall_to_instants(wall, zone)
            if second is not None and cron.all_hours and second > after:
                best = second if best is None else min(best, second)
            if first > after:
                # first() is monotone in the wall time and second >= first, so no
                # later wall time can produce anything earlier: done.
                return first if best is None else min(best, first)
            wall = cron.next_after(wall)
    except (OverflowError, ValueError):
        # Near year 1 or 9999 (or no match within croniter's 50-year search
        # window): there is no representable next run.
        return best
    return best


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


# --------------------------------------------------------------------------- six-field footgun


def _six_fields(schedule: Schedule) -> list[str] | None:
    if schedule.get("kind") != "cron":
        return None
    expr = schedule.get("expr")
    if not isinstance(expr, str) or expr.startswith("@"):
        return None
    fields = expr.split()
    return fields if len(fields) == 6 else None


def seconds_per_minute(schedule: Schedule) -> int | None:
    """How many times a six-field cron schedule fires in each minute it matches.

    The seconds field is the last one (croniter's order), so ``0 */5 * * * *``
    fires at every second of minute 0 of every fifth hour: 60. None for
    anything that is not a six-field cron expression (at most once a minute).
    """
    fields = _six_fields(schedule)
    if fields is None:
        return None
    seconds = _compile(_normalise_cron_expr(str(schedule["expr"])))._iters[0].expanded[5]
    return 60 if seconds == ["*"] else len(set(seconds))


def six_field_warning(schedule: Schedule, *, dash: str = "\u2014") -> str | None:
    """A one-line warning for a six-field expression whose seconds field is ``*`` or a range.

    That is almost always a seconds-*first* expression (Quartz, Spring,
    node-cron) read here with seconds last. A fixed seconds field (``... 30``)
    or a list is deliberate and gets None. ``dash`` joins the two halves (the
    CLI passes ``-`` where the terminal cannot show an em dash).
    """
    fields = _six_fields(schedule)
    count = seconds_per_minute(schedule)
    if fields is None or count is None or count < 2:
        return None
    last = fields[5]
    if not (last.startswith("*") or "-" in last):
        return None
    how = f"{count} times a minute" + (" (every second)" if count == 60 else "")
    text = (
        f"{schedule['expr']!r} has six fields; the last is seconds, so it fires {how} "
        "in each matching minute"
    )
    hint = _seconds_first_reading(fields)
    if hint is not None:
        text += f" {dash} if the first field was meant as seconds, write {hint!r}"
    return text


def _seconds_first_reading(fields: list[str]) -> str | None:
    """The seconds-last expression for ``fields`` read seconds first, if that reading is clear.

    Only when the first field is one plain second and the last (day-of-week in
    that reading) is ``*``: day-of-week numbers differ between the dialects.
    """
    second, rest = fields[0], fields[1:]
    if not second.isdigit() or int(second) > 59 or rest[-1] not in ("*", "?"):
        return None
    candidate = " ".join(rest[:-1] + ["*"] + ([] if int(second) == 0 else [second]))
    try:
        _compile(_normalise_cron_expr(candidate))
    except ScheduleError:
        return None
    return candidate
