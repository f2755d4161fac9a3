"""Cron expressions: validation, compilation, and the walk of their fire instants (SPEC §2).

Cron expressions are matched by croniter on *naive wall-clock* times of the
schedule's zone; mapping those wall times to instants is done with
:mod:`zoneinfo` (:func:`cron.zones._wall_to_instants`), because croniter's own DST
handling skips or repeats fires around transitions. The mapping follows the SPEC rules:

* a wall time inside a spring-forward gap fires once, at the transition
  instant (the first instant after the gap); several gap matches collapse;
* a wall time inside a fall-back fold fires on the first pass only, unless the
  hour field covers all 24 hours, in which case both passes fire.

Day-of-month and day-of-week combine as in Vixie cron (the daemon the
crontab provider hands lines to): when either field's text starts with ``*``
both must match, otherwise either may. croniter's own rule differs, so the
two fields are matched separately and combined here (see :class:`_Cron`).

Because each wall time maps to a fixed set of instants, the fire times form
one fixed, ordered set per (expression, zone): :func:`_next_cron` is the
successor function of that set, hence monotone, and a walk never repeats or
goes back.

Also here: the six-field footgun (:func:`six_field_warning`), since it reads a
compiled expression's seconds field.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any

from croniter import CroniterBadDateError, croniter

from cron.errors import ScheduleError
from cron.zones import _wall_to_instants

Schedule = dict[str, Any]

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

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
    return it.expanded[index] == ["*"] and not it.nth_weekday_of_month and not it.nearest_weekday


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


__all__ = ["ALIASES", "Schedule", "seconds_per_minute", "six_field_warning"]
