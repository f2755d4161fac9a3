"""What cron can express: a cronkit cron expression as five portable crontab fields.

:func:`cron_fields` rebuilds the fields from croniter's expansion of the source
cronkit itself matches (:mod:`cron.cronexpr`), so the crontab line fires at
exactly the job's instants — or returns None and the job goes to the sweep.
Pure: no process, no file. Importable from :mod:`cron.providers.crontab.table`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from croniter import croniter

# (minimum, maximum) of the five crontab fields: minute hour day-of-month month day-of-week.
_FIELD_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_MONTHS = frozenset(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
)
_DAYS = frozenset(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
_NAME_RE = re.compile(r"[a-z]{3}")


def _compress(values: Sequence[int]) -> str:
    """Sorted ints as portable crontab syntax: ``1-5``, ``0-45/15``, ``1,3,10-12``.

    Only plain numbers, ``a-b`` and ``a-b/s`` are emitted — the subset every
    cron reads the same way (Debian rejects croniter's ``5/15``, and names or
    ``L``/``W``/``#`` are not portable).
    """
    if len(values) >= 3:
        step = values[1] - values[0]
        if step > 1 and list(values) == list(range(values[0], values[-1] + 1, step)):
            return f"{values[0]}-{values[-1]}/{step}"
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{values[i]}-{values[j]}")
        else:
            parts.extend(str(v) for v in values[i : j + 1])
        i = j + 1
    return ",".join(parts)


def _cronkit_source(expr: str) -> str | None:
    """The croniter source cronkit itself matches for ``expr`` (validated, normalised)."""
    from cron.cronexpr import _compile, _normalise_cron_expr
    from cron.errors import ScheduleError

    try:
        return _compile(_normalise_cron_expr(expr)).expr
    except ScheduleError:
        return None


def _has_extension(index: int, text: str) -> bool:
    """``L``, ``W``, ``#`` (or any letter that is not a month/day name): croniter-only syntax."""
    low = text.lower()
    if "#" in low:
        return True
    names = _MONTHS if index == 3 else _DAYS if index == 4 else frozenset()
    stripped = _NAME_RE.sub(lambda m: "" if m.group(0) in names else m.group(0), low)
    return any(c.isalpha() for c in stripped)


def _star_step(values: Sequence[int], index: int) -> str | None:
    """``*/n`` when Vixie cron reads it as exactly ``values`` for field ``index``, else None.

    Vixie's ``*`` spans its own field range, in which day-of-week runs 0-7
    (7 = Sunday again), so ``*/7`` there is Sunday alone.
    """
    lo, hi = (1, 31) if index == 2 else (0, 7)
    for step in range(2, hi - lo + 1):
        if sorted({v % 7 if index == 4 else v for v in range(lo, hi + 1, step)}) == list(values):
            return f"*/{step}"
    return None


def _day_fields(parts: Sequence[str]) -> tuple[str, str] | None:
    """Day-of-month and day-of-week fields that Vixie cron combines as cronkit does.

    cronkit applies Vixie's rule to the job's own text (AND when either day
    field starts with ``*``, else OR), so the rendered pair must keep the
    field sets *and* which rule applies. Each field is expanded on its own
    (the other one ``*``), which is how :mod:`cron.cronexpr` matches them.
    """
    try:
        by_dom = croniter(" ".join([*parts[:4], "*"]), datetime(2000, 1, 1))
        by_dow = croniter(" ".join([*parts[:2], "*", *parts[3:5]]), datetime(2000, 1, 1))
    except Exception:
        return None
    rendered: list[str | None] = []
    ints: list[list[int]] = []
    for it, index in ((by_dom, 2), (by_dow, 4)):
        values: list[Any] = list(it.expanded[index])
        if values == ["*"]:
            rendered.append(None)
            ints.append([])
            continue
        if not values or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
            return None
        lo, hi = _FIELD_RANGES[index]
        clean = sorted({0 if (index == 4 and v == 7) else v for v in values})
        if clean[0] < lo or clean[-1] > hi:
            return None
        rendered.append(_compress(clean))
        ints.append(clean)
    dom, dow = rendered
    from cron.cronexpr import _day_star

    star = _day_star(parts[2]) or _day_star(parts[4])
    if not star:
        if dom is None or dow is None:
            return "*", "*"  # one field matches every day, so either-matches does too
        return dom, dow  # neither starts with '*': Vixie ORs them, as cronkit does
    if dom is None or dow is None:
        return dom or "*", dow or "*"  # AND with every day: just the other field
    # Both restricted and ANDed: Vixie ANDs only if one rendered field starts with '*'.
    dom_star = _star_step(ints[0], 2)
    if dom_star is not None:
        return dom_star, dow
    dow_star = _star_step(ints[1], 4)
    if dow_star is not None:
        return dom, dow_star
    return None


def cron_fields(expr: str) -> str | None:
    """Five crontab fields that fire at exactly the instants cronkit's ``expr`` does, or None.

    The fields are rebuilt from croniter's expansion of the very source cronkit
    matches (``cron.schedule`` normalises some forms first), so the crontab
    means the same thing whatever syntax the job used: names become numbers,
    ``*/15`` becomes ``0-45/15``, a 6-field expression is accepted only when its
    seconds field is exactly ``0``. The day fields keep Vixie's rule, which
    cronkit applies too (see :func:`_day_fields`). None for what cron cannot
    express: ``L``, ``W``, ``#``, non-zero seconds, two ANDed day sets neither of
    which is a ``*/n`` — and for anything cronkit itself would not accept.
    """
    source = _cronkit_source(expr)
    if source is None:
        return None
    parts = source.split()
    if len(parts) not in (5, 6) or any(_has_extension(i, f) for i, f in enumerate(parts[:5])):
        return None
    try:
        it = croniter(source, datetime(2000, 1, 1))
    except Exception:
        return None
    if getattr(it, "nth_weekday_of_month", None) or getattr(it, "nearest_weekday", None):
        return None
    expanded: list[list[Any]] = [list(f) for f in it.expanded]
    if len(parts) == 6 and expanded[5] != [0]:
        return None
    days = _day_fields(parts)
    if days is None:
        return None
    out: list[str] = []
    for index in (0, 1, 3):
        values = expanded[index]
        if values == ["*"]:
            out.append("*")
            continue
        if not values or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
            return None
        lo, hi = _FIELD_RANGES[index]
        ints = sorted(set(values))
        if ints[0] < lo or ints[-1] > hi:
            return None
        out.append(_compress(ints))
    minute, hour, month = out
    return " ".join((minute, hour, days[0], month, days[1]))


__all__ = ["cron_fields"]
