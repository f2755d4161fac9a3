"""``cronkit apply FILE``: declared (keyed) jobs created, updated and pruned from YAML."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from cron.cli._app import main
from cron.cli._common import checked_config
from cron.cli._errors import fail
from cron.cli._format import one_line
from cron.errors import CronkitError

_APPLY_FIELDS = (
    "key",
    "schedule",
    "command",
    "python",
    "name",
    "tz",
    "catch_up",
    "timeout",
    "retry",
    "cwd",
    "env",
    "enabled",
)
_WOULD = {"created": "would create", "updated": "would update", "removed": "would remove"}


def _read_declarations(path: Path) -> list[dict[str, Any]]:
    """The ``jobs:`` entries of an apply file, shape-checked (one clear error, exit 2)."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except UnicodeDecodeError as exc:
        fail(f"{path}: not UTF-8 text ({exc.reason})")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        fail(f"{where}: YAML syntax error: {problem}")
    if not isinstance(doc, dict) or set(doc) != {"jobs"} or not isinstance(doc["jobs"], list):
        fail(f"{path}: expected a mapping with one key, 'jobs', holding a list of jobs")
    entries: list[dict[str, Any]] = doc["jobs"]
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):

        def bad(field: str, detail: str, *, _i: int = index, _e: object = entry) -> NoReturn:
            key = _e.get("key") if isinstance(_e, dict) else None
            label = f"entry {_i}" + (f" (key {key!r})" if key is not None else "")
            fail(f"{path}: {label}: {field}: {detail}")

        if not isinstance(entry, dict):
            bad("entry", f"expected a mapping, got {entry!r}")
        for field in entry:
            if field not in _APPLY_FIELDS:
                bad(str(field), f"unknown field (known: {', '.join(_APPLY_FIELDS)})")
        if "key" not in entry:
            bad("key", "missing: every applied job needs a key")
        if "schedule" not in entry:
            bad("schedule", "missing")
        if ("command" in entry) == ("python" in entry):
            bad("command", "give exactly one of 'command' or 'python'")
        key = entry["key"]
        if isinstance(key, str) and key in seen:
            bad("key", f"also used by entry {seen[key]}")
        if isinstance(key, str):
            seen[key] = index
    return entries


def _entry_where(entry: dict[str, Any], base: Path) -> tuple[str | None, Any]:
    """``cwd`` (relative = to the file's directory, as compose files read paths) and ``env``
    (YAML numbers and booleans as the text they were written as, e.g. ``PORT: 8080``)."""
    cwd = entry.get("cwd")
    if isinstance(cwd, str) and cwd and not Path(cwd).expanduser().is_absolute():
        cwd = str((base / cwd).absolute())
    env = entry.get("env")
    if isinstance(env, dict):
        env = {
            k: (
                ("true" if v else "false")
                if isinstance(v, bool)
                else str(v)
                if isinstance(v, int | float)
                else v
            )
            for k, v in env.items()
        }
    return cwd, env


def _declare_entry(
    entry: dict[str, Any], now: datetime, *, dry_run: bool, base: Path = Path()
) -> Any:
    from cron import jobs

    action: dict[str, Any] = (
        {"kind": "python", "target": entry["python"]}
        if "python" in entry
        else {"kind": "command", "command": entry["command"]}
    )
    return jobs.declare_job(
        entry["schedule"],
        action,
        key=entry["key"],
        name=entry.get("name"),
        enabled=entry.get("enabled"),
        tz=entry.get("tz"),
        catch_up=entry.get("catch_up"),
        timeout=entry.get("timeout"),
        retry=entry.get("retry"),
        now=now,
        dry_run=dry_run,
        cwd=_entry_where(entry, base)[0],
        env=_entry_where(entry, base)[1],
    )


def _entry_error_field(entry: dict[str, Any], exc: Exception) -> str:
    from cron.errors import ActionError, JobValueError, ScheduleError, TimeZoneError

    if isinstance(exc, JobValueError):
        return exc.field
    if isinstance(exc, ActionError):
        return "python" if "python" in entry else "command"
    if isinstance(exc, TimeZoneError) and entry.get("tz") is not None:
        return "tz"
    if isinstance(exc, ScheduleError):
        return "schedule"
    return "entry"


@main.command("apply", short_help="Create, update (and --prune) keyed jobs from a YAML file.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--prune", is_flag=True, help="Remove keyed jobs the file no longer lists.")
@click.option("--dry-run", is_flag=True, help="Print what would change; write nothing.")
def apply_cmd(file: Path, prune: bool, dry_run: bool) -> None:
    """Make the jobs declared in FILE (``jobs: [{key, schedule, command | python, ...}]``) so.

    Each entry is created or updated by its key; jobs without a key are never
    touched. One line per job: created / updated / unchanged / removed, key, id.
    Every entry is checked before anything is written: a bad file changes nothing.
    """
    checked_config(store=True)
    from cron import jobs

    entries = _read_declarations(file)
    now = datetime.now(UTC)
    # Pass 1: every entry against the store, writing nothing; the first bad one stops it all.
    for index, entry in enumerate(entries):
        try:
            _declare_entry(entry, now, dry_run=True, base=file.parent)
        except (CronkitError, ValueError) as exc:
            field = _entry_error_field(entry, exc)
            fail(f"{file}: entry {index} (key {entry.get('key')!r}): {field}: {one_line(str(exc))}")
    lines: list[str] = []
    for entry in entries:
        done = _declare_entry(entry, now, dry_run=dry_run, base=file.parent)
        job_id = done.job.get("id") or "(new)"
        changed = f" ({', '.join(done.changed)})" if done.changed else ""
        verb = _WOULD.get(done.verdict, done.verdict) if dry_run else done.verdict
        lines.append(f"{verb} {entry['key']} {job_id}{changed}")
    if prune:
        listed = {entry["key"] for entry in entries}
        for job in jobs.list_jobs():
            key = job.get("key")
            if key is None or key in listed:
                continue
            if dry_run or jobs.remove_job(job["id"]):
                lines.append(f"{_WOULD['removed'] if dry_run else 'removed'} {key} {job['id']}")
    for line in lines:
        click.echo(line)
