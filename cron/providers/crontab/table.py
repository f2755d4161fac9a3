"""The crontab block cronkit owns: pure rendering, classification and splicing.

Nothing here runs a process or reads the store: :mod:`cron.providers.crontab`
feeds it jobs and crontab text, so every rule below is unit-testable without
the ``crontab`` binary.

The block, one per ``CRONKIT_HOME`` (so two homes of one user coexist)::

    # BEGIN cronkit /home/ann/.cronkit (managed by cronkit; do not edit)
    # cronkit: jobs fire via 'cronkit fire'; change them with cronkit, not here
    0 9 * * 1-5 CRONKIT_HOME=/home/ann/.cronkit /usr/bin/python3 -m cron fire 0123456789ab
        --scheduled-at "$(date -u +\\%Y-...)" >/dev/null 2>>/home/ann/.cronkit/cron/crontab.log
    # cronkit: per-minute sweep for schedules cron cannot express (...)
    * * * * * CRONKIT_HOME=/home/ann/.cronkit /usr/bin/python3 -m cron tick >/dev/null 2>>...
    # END cronkit /home/ann/.cronkit

(each job line is one physical line in the crontab). Lines outside the block are never changed.
"""

from __future__ import annotations

import os
import re
import shlex
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from croniter import croniter

from cron.errors import CronkitError

# Debian's cron refuses a command of 1000 characters or more ("command too long");
# measured: 990 installs, 1000 does not.
MAX_COMMAND = 990

HEADER = "# cronkit: jobs fire via 'cronkit fire'; change them with cronkit, not here"
SWEEP_COMMENT = (
    "# cronkit: per-minute sweep for schedules cron cannot express "
    "(intervals, one-shots, seconds, other zones)"
)
# The daemon's minute, in UTC, as the slot being fired ('%' must be escaped in crontab).
SLOT_EXPR = '"$(date -u +%Y-%m-%dT%H:%M:00+00:00)"'

# (minimum, maximum) of the five crontab fields: minute hour day-of-month month day-of-week.
_FIELD_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_MONTHS = frozenset(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
)
_DAYS = frozenset(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
_NAME_RE = re.compile(r"[a-z]{3}")
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"})


class CrontabError(CronkitError, RuntimeError):
    """The crontab could not be read or written (binary missing, denied, rejected, timed out)."""


class CrontabRenderError(CrontabError, ValueError):
    """A block line that cron would reject (e.g. a command over Debian's 990 characters)."""


# -- what cron can express ------------------------------------------------------------


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


# -- zones --------------------------------------------------------------------------


def _zone_file(name: str) -> bytes | None:
    if not name or name.startswith("/") or ".." in name.split("/"):
        return None
    for base in zoneinfo.TZPATH:
        try:
            return (Path(base) / name).read_bytes()
        except OSError:
            continue
    return None


def system_zone_name() -> str:
    """The zone the cron daemon reads its fields in: ``/etc/localtime``, else UTC.

    Debian's cron has no ``CRON_TZ``: it uses the process's local time, i.e.
    ``/etc/localtime`` unless the daemon was started with ``TZ`` set (pass
    ``daemon_tz`` to the provider then). Returns ``""`` when ``/etc/localtime``
    is a plain file of unknown name; :func:`same_zone` then compares contents.
    """
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        target = ""
    if "/zoneinfo/" in target:
        return target.split("/zoneinfo/", 1)[1]
    if not os.path.exists("/etc/localtime"):
        return "UTC"
    try:
        with open("/etc/timezone", encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _fingerprint(name: str) -> object:
    if name in _UTC_NAMES:
        return "UTC"
    data = _zone_file(name)
    if data is None and name == "":
        try:
            data = Path("/etc/localtime").read_bytes()
        except OSError:
            return "UTC"
    return data if data is not None else name


def same_zone(a: str, b: str) -> bool:
    """True when zone names ``a`` and ``b`` are the same clock (aliases, links, UTC spellings).

    ``""`` means "the system zone". Conservative: when in doubt, False (the
    job then goes to the sweep, which is always correct, just coarser).
    """
    if a == b:
        return True
    return _fingerprint(a) == _fingerprint(b)


# -- classifying jobs -------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where a job fires from: its own line (``fields`` set) or the sweep (``reason`` says why)."""

    job_id: str
    fields: str | None
    reason: str = ""

    @property
    def own_line(self) -> bool:
        return self.fields is not None


def is_active(job: dict[str, Any]) -> bool:
    """Jobs the tick would consider: enabled and ``scheduled`` (paused/completed: no line)."""
    return bool(job.get("enabled", True)) and job.get("state") == "scheduled"


def place(job: dict[str, Any], *, configured_zone: str, daemon_zone: str) -> Placement:
    """Decide whether cron can fire ``job`` at exactly its slots, or the sweep must.

    The job's zone is ``schedule.tz``, else ``configured_zone``
    (``cron.timezone``), else the daemon's: a process started by cron has no
    ``$TZ``, so the shell's ``$TZ`` at ``cronkit add`` time is deliberately not
    used.
    """
    job_id = str(job.get("id"))
    schedule = job.get("schedule") or {}
    kind = schedule.get("kind")
    if kind == "interval":
        return Placement(job_id, None, "interval (anchored on its own start, not on the clock)")
    if kind == "once":
        return Placement(job_id, None, "one-shot")
    if kind != "cron" or not isinstance(schedule.get("expr"), str):
        return Placement(job_id, None, f"unknown schedule kind {kind!r}")
    fields = cron_fields(schedule["expr"])
    if fields is None:
        return Placement(job_id, None, "cron syntax crontab lacks (seconds, L, W or #)")
    zone = schedule.get("tz") or configured_zone or ""
    if zone and not same_zone(str(zone), daemon_zone):
        shown = daemon_zone or "the system zone"
        return Placement(job_id, None, f"zone {zone} differs from the cron daemon's ({shown})")
    return Placement(job_id, fields)


# -- rendering ------------------------------------------------------------------------


def begin_marker(home: str) -> str:
    return f"# BEGIN cronkit {shlex.quote(home)} (managed by cronkit; do not edit)"


def end_marker(home: str) -> str:
    return f"# END cronkit {shlex.quote(home)}"


def _escape_percent(command: str) -> str:
    # cron turns an unescaped % into a newline (the rest becomes stdin); it
    # strips the backslash of \% before running the command, even in quotes.
    return command.replace("%", "\\%")


@dataclass(frozen=True)
class Invocation:
    """How a block line starts cronkit: the home, the interpreter, its import path, the log."""

    home: str
    python: str
    pythonpath: str | None = None

    @property
    def log_path(self) -> str:
        return str(Path(self.home) / "cron" / "crontab.log")

    def command(self, verb: Sequence[str], raw_tail: str = "") -> str:
        env = [f"CRONKIT_HOME={shlex.quote(self.home)}"]
        if self.pythonpath:
            env.append(f"PYTHONPATH={shlex.quote(self.pythonpath)}")
        words = [*env, shlex.quote(self.python), "-m", "cron", *map(shlex.quote, verb)]
        text = " ".join(words) + (f" {raw_tail}" if raw_tail else "")
        text += f" >/dev/null 2>>{shlex.quote(self.log_path)}"
        command = _escape_percent(text)
        if len(command) > MAX_COMMAND or "\n" in command or "\r" in command:
            raise CrontabRenderError(
                f"crontab command for {self.home!r} is {len(command)} characters (cron's limit is "
                f"{MAX_COMMAND}) or spans lines; use a shorter CRONKIT_HOME or interpreter path"
            )
        return command

    def fire_line(self, fields: str, job_id: str) -> str:
        return f"{fields} {self.command(['fire', job_id, '--scheduled-at'], SLOT_EXPR)}"

    def sweep_line(self) -> str:
        return f"* * * * * {self.command(['tick'])}"


def render_block(inv: Invocation, placements: Iterable[Placement]) -> list[str]:
    """The block's lines (no newlines) for these jobs; ``[]`` when nothing needs cron."""
    chosen = list(placements)
    if not chosen:
        return []
    lines = [begin_marker(inv.home), HEADER]
    lines += [inv.fire_line(p.fields, p.job_id) for p in chosen if p.fields is not None]
    if any(not p.own_line for p in chosen):
        lines += [SWEEP_COMMENT, inv.sweep_line()]
    lines.append(end_marker(inv.home))
    return lines


# -- reading and splicing crontab text ------------------------------------------------------


def _is_begin(line: str, home: str) -> bool:
    text = line.strip()
    head = f"# BEGIN cronkit {shlex.quote(home)}"
    return text == head or text.startswith(head + " ")


def _is_end(line: str, home: str) -> bool:
    return line.strip() == end_marker(home)


def _is_owned(line: str, home: str) -> bool:
    """A line of this home's block that survived the loss of its END marker."""
    text = line.strip()
    return text.startswith("# cronkit:") or f"CRONKIT_HOME={shlex.quote(home)} " in text


@dataclass
class Parsed:
    """Crontab text split around this home's block(s)."""

    kept: list[str]  # every other line, in order, unchanged (split on "\n")
    insert_at: int | None  # index in ``kept`` where the (first) block stood
    block: list[str] | None  # the first block's lines, markers included
    blocks_found: int = 0
    stray_markers: int = 0  # an END without BEGIN, a BEGIN without END
    extra: list[list[str]] = field(default_factory=list)  # further blocks of the same home


def parse(text: str, home: str) -> Parsed:
    """Find this home's block in ``text`` without disturbing any other line.

    Robust to hand edits: a BEGIN whose END was deleted owns only the lines
    right after it that are recognisably this home's (``# cronkit:`` comments
    and lines setting this ``CRONKIT_HOME``); an orphan END is dropped; a
    duplicated block is folded into the first.
    """
    lines = text.split("\n")
    kept: list[str] = []
    insert_at: int | None = None
    first: list[str] | None = None
    extra: list[list[str]] = []
    found = stray = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        if _is_begin(line, home):
            j = i + 1
            while j < len(lines) and not _is_end(lines[j], home) and not _is_begin(lines[j], home):
                j += 1
            if j < len(lines) and _is_end(lines[j], home):
                region = lines[i : j + 1]
                i = j + 1
            else:
                stray += 1
                j = i + 1
                while j < len(lines) and _is_owned(lines[j], home):
                    j += 1
                region = lines[i:j]
                i = j
            found += 1
            if first is None:
                first, insert_at = region, len(kept)
            else:
                extra.append(region)
            continue
        if _is_end(line, home):
            stray += 1
            i += 1
            continue
        kept.append(line)
        i += 1
    return Parsed(kept, insert_at, first, found, stray, extra)


def splice(text: str, home: str, block: list[str]) -> str:
    """``text`` with this home's block replaced by ``block`` (``[]`` removes it).

    Every other line is kept byte for byte and in place. A new block goes at
    the end. The result ends with a newline unless it is empty (cron rejects
    a last line without one).
    """
    parsed = parse(text, home)
    kept = parsed.kept
    if parsed.insert_at is not None:
        out = kept[: parsed.insert_at] + block + kept[parsed.insert_at :]
    else:
        # kept ends with "" when text ended with a newline: put the block before it.
        if kept and kept[-1] == "":
            out = kept[:-1] + block + [""]
        else:
            out = kept + block
    result = "\n".join(out)
    if result and not result.endswith("\n"):
        result += "\n"
    return result


def block_job_ids(block: Iterable[str]) -> dict[str, str]:
    """``{job_id: line}`` for the fire lines of a block (as found in a crontab)."""
    out: dict[str, str] = {}
    for line in block:
        try:
            words = shlex.split(line.replace("\\%", "%"), comments=False)
        except ValueError:
            continue
        for k in range(len(words) - 3):
            if words[k : k + 3] == ["-m", "cron", "fire"]:
                out[words[k + 3]] = line.strip()
                break
    return out


def has_sweep(block: Iterable[str]) -> bool:
    for line in block:
        try:
            words = shlex.split(line.replace("\\%", "%"))
        except ValueError:
            continue
        if any(words[k : k + 3] == ["-m", "cron", "tick"] for k in range(len(words) - 2)):
            return True
    return False


__all__ = [
    "HEADER",
    "MAX_COMMAND",
    "CrontabError",
    "CrontabRenderError",
    "Invocation",
    "Parsed",
    "Placement",
    "begin_marker",
    "block_job_ids",
    "cron_fields",
    "end_marker",
    "has_sweep",
    "is_active",
    "parse",
    "place",
    "render_block",
    "same_zone",
    "splice",
    "system_zone_name",
]
