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

Translating a cron expression into crontab fields is :mod:`cron.providers.crontab.fields`
(:func:`cron_fields`, importable from here).
"""

from __future__ import annotations

import os
import shlex
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cron.errors import CronkitError
from cron.model import JobDoc
from cron.model import is_active as is_active  # the tick's test: a job gets a line only if active
from cron.providers.crontab.fields import cron_fields

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

_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"})


class CrontabError(CronkitError, RuntimeError):
    """The crontab could not be read or written (binary missing, denied, rejected, timed out)."""


class CrontabRenderError(CrontabError, ValueError):
    """A block line that cron would reject (e.g. a command over Debian's 990 characters)."""


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


def place(job: JobDoc, *, configured_zone: str, daemon_zone: str) -> Placement:
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
