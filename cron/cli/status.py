"""``cronkit status``: will my jobs fire? (exit 0 running/external, 1, 2, 3)."""

from __future__ import annotations

import ast
import builtins
import contextlib
import errno
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from cron import errors, paths, procinfo
from cron.cli._app import main
from cron.cli._common import checked_config
from cron.cli._errors import ledger_location
from cron.cli._format import (
    age,
    configured_zone,
    echo_json,
    em_dash,
    fmt_duration,
    fmt_next_run,
    fmt_time,
    job_label,
    one_line,
    symbols,
)


@dataclass(frozen=True)
class RecordedError:
    """A tick error as the ticker recorded it: ``Type: message``, written by
    :func:`cron.jobs.record_ticker_error` from the exception it caught.

    The exception itself is gone (it was raised in the gateway, maybe on another
    host), so the hint goes by what the record still says about its type: the
    class, looked up by name among the builtins, :mod:`cron.errors` and
    :mod:`sqlite3`, and for an ``OSError`` its errno and file name.
    """

    kind: type[BaseException] | None
    errno: int | None = None
    filename: str | None = None

    @classmethod
    def parse(cls, text: str) -> RecordedError:
        name, _, message = text.partition(": ")
        found = next(
            (getattr(module, name, None) for module in _ERROR_MODULES if hasattr(module, name)),
            None,
        )
        kind = found if isinstance(found, type) and issubclass(found, BaseException) else None
        if kind is None or not issubclass(kind, OSError):
            return cls(kind)
        # str(OSError): "[Errno 13] Permission denied: '/path'" (the file name as a repr).
        match = _OS_ERROR_TEXT.match(message)
        if match is None:
            return cls(kind)
        filename: str | None = None
        if match["filename"] is not None:
            with contextlib.suppress(ValueError, SyntaxError):
                filename = str(ast.literal_eval(match["filename"]))
        return cls(kind, int(match["errno"]), filename)

    def isa(self, *kinds: type[BaseException]) -> bool:
        return self.kind is not None and issubclass(self.kind, kinds)


_ERROR_MODULES = (builtins, errors, sqlite3)
_OS_ERROR_TEXT = re.compile(r"\[Errno (?P<errno>\d+)\] [^:]*(?:: (?P<filename>'.*'|\".*\"))?")


def error_hint(error: str | None) -> str | None:
    """A likely fix for a ticker error, for the common causes, decided by its recorded type."""
    if not error:
        return None
    recorded = RecordedError.parse(error)
    jobs_file = paths.jobs_path()
    if recorded.isa(PermissionError):
        denied = recorded.filename is not None and Path(recorded.filename) == jobs_file
        target = str(jobs_file) if denied else "the files under CRONKIT_HOME"
        return (
            f"the ticker cannot read or write {target}: make it owned by the user running "
            "the gateway (chown) with mode 0600 (chmod)"
        )
    if recorded.isa(errors.StoreCorruptError):
        return f"{jobs_file} is corrupt: fix it or move it aside (nothing is written until then)"
    if recorded.isa(errors.StoreLockTimeout):
        return "another cronkit process holds the store lock: look for a hung cronkit process"
    if recorded.isa(OSError) and recorded.errno == errno.ENOSPC:
        return "the disk holding CRONKIT_HOME is full: free some space"
    if recorded.isa(OSError) and recorded.errno == errno.EROFS:
        return "CRONKIT_HOME is on a read-only file system"
    if recorded.isa(errors.ConfigError):
        return f"fix {paths.config_path()}"
    # What SQLite raises for a busy or damaged file (IntegrityError and the like are bugs).
    if recorded.kind in (sqlite3.OperationalError, sqlite3.DatabaseError):
        return f"the run ledger {ledger_location()} is locked or damaged"
    return None


def status_lines(
    st: Any, *, now: datetime | None = None, store_error: str | None = None
) -> list[str]:
    """The verdict line, then aligned ``key: value`` lines, for a TickerStatus.

    Failing jobs and runaway runs follow, one indented ``✗`` line each.
    """
    from cron.status import read_ticker_pid

    ok, bad = symbols()
    dash = em_dash()
    limit = float(st.stale_after)
    pid = st.gateway_pid
    beat = "never" if st.heartbeat_age is None else f"{st.heartbeat_age:.0f}s ago"
    nodes = list(getattr(st, "nodes", []) or [])
    healthy = [n for n in nodes if n["state"] == "running"]
    if st.state == "running" and pid is None and healthy:
        # This home runs no ticker; the shared store's other nodes fire its jobs.
        newest = min(float(n["heartbeat_age"]) for n in healthy)
        verdict = (
            f"{ok} cluster running: {len(healthy)} of {len(nodes)} ticker nodes healthy, "
            f"newest heartbeat {newest:.0f}s ago"
        )
    elif st.state == "running":
        verdict = f"{ok} ticker running (pid {pid}): last heartbeat {beat}"
        if nodes:
            verdict += f"; {len(healthy)} of {len(nodes)} ticker nodes healthy"
    elif st.state == "external":
        verdict = f"{ok} external provider {st.provider!r} triggers jobs"
        if st.detail:
            verdict += f": {one_line(st.detail)}"
    elif st.state == "stalled":
        verdict = (
            f"{bad} ticker STALLED: last heartbeat {beat} (> {limit:.0f}s) {dash} "
            "jobs are NOT firing; restart the gateway"
        )
    elif st.state == "failing" and st.store_error:
        verdict = (
            f"{bad} ticker FAILING: the job store cannot be read {dash} jobs are NOT "
            f"firing: {one_line(st.store_error)}"
        )
    elif st.state == "failing":
        clean = (
            "never completed a clean tick"
            if st.success_age is None
            else f"last clean tick {st.success_age:.0f}s ago (> {limit:.0f}s)"
        )
        err = f": {one_line(st.last_error)}" if st.last_error else ""
        verdict = (
            f"{bad} ticker FAILING: ticks are raising, {clean} {dash} jobs are NOT firing{err}"
        )
    elif st.state == "unknown":
        verdict = (
            f"? ticker state unknown: process {pid} is alive but has never written a heartbeat"
        )
    else:
        verdict = (
            f"{bad} ticker stopped: no gateway or embedded ticker is running {dash} "
            "jobs will NOT fire; start one with 'cronkit gateway'"
        )
    pairs: list[tuple[str, str]] = [("provider", st.provider)]
    if st.state != "external":
        info = read_ticker_pid()
        if pid is not None:
            pairs.append(("ticker pid", str(pid)))
        elif info is not None:
            pairs.append(
                (
                    "ticker pid",
                    f"none (stale pid file: pid {info.get('pid')} is not "
                    "running; left by a ticker that was killed or crashed)",
                )
            )
        else:
            pairs.append(("ticker pid", "none"))
        pairs.append(("heartbeat", f"{age(st.heartbeat_age)} (stale after {limit:.0f}s)"))
        pairs.append(("last success", age(st.success_age)))
    pairs.append(("last error", one_line(st.last_error) if st.last_error else "none"))
    hint = error_hint(st.last_error)
    if hint:
        pairs.append(("hint", hint))
    store_error = store_error or getattr(st, "store_error", None)
    if store_error:
        pairs.append(("job store", f"UNREADABLE: {one_line(store_error)}"))
    pairs.append(("active jobs", str(st.jobs_active)))
    pairs.append(("next run", fmt_next_run(st.next_run_at, now=now, empty="none")))
    failing = list(getattr(st, "failing_jobs", []) or [])
    total = int(getattr(st, "failing_jobs_total", 0) or len(failing))
    runaway = list(getattr(st, "runaway_runs", []) or [])
    if total:
        pairs.append(("failing jobs", str(total)))
    if runaway:
        pairs.append(("runaway runs", f"{len(runaway)} (still going past their timeout)"))
    stall = getattr(st, "stall", None)
    if stall:
        pairs.append(("after stall", _stall_text(stall, now=now)))
    if nodes:
        pairs.append(
            ("ticker nodes", f"{len(nodes)} registered, {len(healthy)} healthy (shared store)")
        )
    width = max(len(k) for k, _ in pairs) + 1
    lines = [verdict] + [f"  {(k + ':').ljust(width)} {v}" for k, v in pairs]
    for node in nodes:
        lines.append(_node_line(node, ok, bad, limit))
    for job in failing:
        streak = int(job.get("failure_streak") or 0)
        err = one_line(job.get("last_error") or job.get("last_status") or "no error recorded")
        lines.append(
            f"    {bad} {job_label(job)}: {streak} failed run"
            f"{'s' if streak != 1 else ''} in a row; last error: {err}"
        )
    if total > len(failing):
        lines.append(f"    ... and {total - len(failing)} more ('cronkit list' shows them)")
    for run in runaway:
        label = job_label({"id": run.get("job_id"), "name": run.get("name")})
        owner = procinfo.split_owner(str(run.get("owner") or ""))
        if run.get("pgid"):
            where = f"process group {run['pgid']}"
        elif owner is not None:
            where = f"a thread of pid {owner[1]} on {owner[0]}"
        else:
            where = "a thread that cannot be killed"
        limit = float(run["timeout"])
        shown = f"{limit:g}s" if limit < 60 else fmt_duration(limit)
        lines.append(
            f"    {bad} {label}: running {fmt_duration(float(run['running_for']))}, past its "
            f"{shown} timeout, in {where}; the job holds its claim until the run ends"
        )
    return lines


def _node_line(node: dict[str, Any], ok: str, bad: str, limit: float) -> str:
    """One registered ticker of a shared store: ✓ when healthy, ✗ when stale, failing or gone."""
    where = f"{node['host']} pid {node['pid']}" + (" (this home)" if node.get("this") else "")
    beat = f"heartbeat {fmt_duration(float(node['heartbeat_age']))} ago"
    if node["state"] == "running":
        return f"    {ok} {where}: running, {beat}"
    if node["state"] == "stale":
        return f"    {bad} {where}: STALE, last {beat} (> {limit:.0f}s)"
    err = f": {one_line(node['last_error'])}" if node.get("last_error") else ""
    return f"    {bad} {where}: {node['state'].upper()}, {beat}{err}"


def _stall_text(stall: dict[str, Any], *, now: datetime | None) -> str:
    """One line: the stall window and what became of the slots that came due in it."""
    zone = configured_zone()
    start = fmt_time(stall["from"], now=now, zone=zone)
    end = "now (ongoing)" if stall.get("ongoing") else fmt_time(stall["to"], now=now, zone=zone)
    n = int(stall["slots"])
    parts = [
        f"{stall['fired']} fired (late, once each)",
        f"{stall['replaced_by_late_fire']} replaced by those late fires",
        f"{stall['missed']} missed",
        f"{stall['skipped']} skipped",
    ]
    if stall.get("waiting"):
        parts.append(f"{stall['waiting']} still waiting for the ticker")
    if stall.get("lost") or stall.get("double"):
        parts.append(f"{stall['lost']} lost, {stall['double']} double ('cronkit verify')")
    return f"{start} .. {end}: {n} slot{'s' if n != 1 else ''} came due: " + ", ".join(parts)


@main.command("status", short_help="Will my jobs fire? (exit 0/1/2/3)")
@click.option("--json", "as_json", is_flag=True, help="Print the status object.")
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Will my jobs fire? Exit 0 running/external, 1 stalled/failing, 2 stopped, 3 unknown."""
    cfg = checked_config()
    from cron.status import ticker_status

    st = ticker_status(cfg=cfg)
    if as_json:
        echo_json(st.to_dict())
    else:
        for line in status_lines(st):
            click.echo(line)
    ctx.exit(st.exit_code)
