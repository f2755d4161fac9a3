"""``cronkit``: the operator's command line (SPEC §9). ``python -m cron`` is the same.

Every verb goes through :class:`_CronkitGroup.main`, the one place errors are
turned into output: bad input of any kind (an unknown id, a bad schedule, a
bad flag combination, an unreadable config, a corrupt ``jobs.json``) is one
line on stderr, ``cronkit: error: <what> [; <fix>]``, and exit status 2 — never
a traceback. Verbs validate everything before they write, and the job API
validates before it takes the store lock, so a failed command writes nothing.

Exit codes: 0 success; 1 the thing ran and failed (a job's run, ``status``
stalled/failing, an internal error); 2 bad input (``status``: stopped);
3 ``status`` unknown; 130 interrupted.

Human output shows instants in the configured zone with their UTC offset and
a relative time (``2026-11-25 09:00:00 +01:00 (in 4m)``). ``--json`` output is
stable and documented in ``docs/CLI.md``; stored timestamps stay UTC there.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shlex
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from cron import __version__, paths, procinfo
from cron.config import cfg_get, load_config
from cron.errors import ConfigError, CronkitError, JobNotFoundError

log = logging.getLogger("cron.cli")

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

# -- errors ---------------------------------------------------------------------------------------


class CliError(Exception):
    """A refusal the CLI itself decides on: one line on stderr, then ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


_verbosity = 0


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _os_error_line(exc: OSError) -> str:
    target = exc.filename
    what = exc.strerror or str(exc)
    line = f"{what}: {target}" if target else what
    if isinstance(exc, PermissionError):
        owner = f"'{target}'" if target else "the file"
        line += (
            f"; make {owner} readable and writable by the user running cronkit "
            "(cronkit keeps its files mode 0600, its directories 0700)"
        )
    elif exc.errno == errno.ENOSPC:
        line += "; free some disk space on the file system holding CRONKIT_HOME"
    elif exc.errno == errno.EROFS:
        line += "; CRONKIT_HOME must be on a writable file system"
    return line


def error_message(exc: BaseException) -> tuple[str, int]:
    """The one stderr line (without the ``cronkit: error:`` prefix) and exit code for ``exc``."""
    if isinstance(exc, CliError):
        return _one_line(str(exc)), exc.exit_code
    if isinstance(exc, click.UsageError):
        msg = exc.format_message()
        if exc.ctx is not None:
            msg += f" (see '{exc.ctx.command_path} --help')"
        return _one_line(msg), EXIT_BAD_INPUT
    if isinstance(exc, click.ClickException):
        return _one_line(exc.format_message()), exc.exit_code
    if isinstance(exc, ConfigError):
        return _one_line(f"{exc}; fix {paths.config_path()}"), EXIT_BAD_INPUT
    if isinstance(exc, CronkitError):
        return _one_line(str(exc)), EXIT_BAD_INPUT
    if isinstance(exc, sqlite3.Error):
        text = str(exc)
        hint = ""
        if "malformed" in text or "not a database" in text:
            hint = "; move the file aside (a new, empty ledger is created on the next run)"
        elif "locked" in text:
            hint = "; another process holds the ledger lock, try again"
        return _one_line(f"run ledger {_ledger_location()}: {text}{hint}"), EXIT_BAD_INPUT
    if isinstance(exc, OSError):
        return _one_line(_os_error_line(exc)), EXIT_BAD_INPUT
    if isinstance(exc, KeyError):
        key = exc.args[0] if exc.args else "?"
        return _one_line(f"unknown key {key!r}"), EXIT_BAD_INPUT
    if isinstance(exc, ValueError):
        return _one_line(str(exc) or type(exc).__name__), EXIT_BAD_INPUT
    return (
        _one_line(f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)"),
        EXIT_FAILED,
    )


def _ledger_location() -> str:
    from cron.store import get_store

    try:
        return str(get_store().ledger_path())
    except Exception:
        return str(paths.executions_path())


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    raise CliError(message, code)


class _CronkitGroup(click.Group):
    """Runs every verb in non-standalone mode and renders every error as one line."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        code = self._run(args, prog_name or "cronkit", complete_var, **extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(
        self, args: Sequence[str] | None, prog_name: str, complete_var: str | None, **extra: Any
    ) -> int:
        root = logging.getLogger()
        saved_level = root.level
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except (click.Abort, KeyboardInterrupt):
            _stderr("cronkit: interrupted")
            return EXIT_INTERRUPTED
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                # The reader went away (``cronkit list | head``): nothing left to say.
                return EXIT_FAILED
            return self._report(exc)
        except Exception as exc:
            return self._report(exc)
        finally:
            # Leave logging as we found it: main() may be called in-process (tests, hosts).
            _remove_handlers()
            root.setLevel(saved_level)
        return rv if isinstance(rv, int) else EXIT_OK

    @staticmethod
    def _report(exc: BaseException) -> int:
        message, code = error_message(exc)
        if _verbosity > 0 and not isinstance(exc, click.ClickException | CliError):
            log.error("traceback of the error below", exc_info=exc)
        _stderr(f"cronkit: error: {message}")
        return code


def _stderr(line: str) -> None:
    try:
        click.echo(line, err=True)
    except OSError:
        pass


# -- logging --------------------------------------------------------------------------------------


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is *now* (click's test runner swaps it per call)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # Straight to the stream: the gateway logs two lines per run, and
            # click.echo's terminal checks on each were a measurable cost.
            stream = sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


class _Formatter(logging.Formatter):
    def __init__(self, *, verbose: bool, tracebacks: bool) -> None:
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if verbose else (
            "cronkit: %(levelname_lower)s: %(message)s"
        )
        super().__init__(fmt)
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        record.levelname_lower = record.levelname.lower()
        if self.tracebacks or not record.exc_info:
            return super().format(record)
        # One line per record unless asked for more: tracebacks are for -v.
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            exc = saved[0][1] if saved[0] else None
            suffix = f" ({type(exc).__name__}: {exc}; -v shows the traceback)" if exc else ""
            return super().format(record) + suffix
        finally:
            record.exc_info, record.exc_text = saved


def _remove_handlers() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StderrHandler):
            root.removeHandler(handler)


def _setup_logging(verbosity: int, *, daemon: bool = False) -> None:
    root = logging.getLogger()
    _remove_handlers()
    if verbosity >= 2:
        level = logging.DEBUG
    elif verbosity == 1 or daemon:
        level = logging.INFO
    else:
        level = logging.WARNING
    handler = _StderrHandler(level)
    loud = verbosity > 0 or daemon
    handler.setFormatter(_Formatter(verbose=loud, tracebacks=loud))
    root.addHandler(handler)
    root.setLevel(level)


# -- formatting -----------------------------------------------------------------------------------


def _zone() -> tzinfo:
    from cron.schedule import resolve_zone

    return resolve_zone()


def _zone_name(zone: tzinfo) -> str:
    key = getattr(zone, "key", None)
    return str(key) if key else str(zone)


def _to_dt(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return None
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
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
    dt = _to_dt(value)
    if dt is None:
        return empty
    local = dt.astimezone(zone if zone is not None else _zone())
    text = f"{local:%Y-%m-%d %H:%M:%S} {fmt_offset(local)}"
    if relative:
        text += f" ({fmt_relative(dt, now)})"
    return text


def fmt_next_run(
    value: object, *, now: datetime | None = None, zone: tzinfo | None = None, empty: str = "-"
) -> str:
    """:func:`fmt_time` for a next run; one already in the past is flagged ``overdue``."""
    text = fmt_time(value, now=now, zone=zone, empty=empty)
    dt = _to_dt(value)
    ref = now if now is not None else datetime.now(UTC)
    if dt is not None and (ref - dt).total_seconds() >= 1:
        text = text[:-1] + ", overdue)"
    return text


def _age(seconds: float | None) -> str:
    return "never" if seconds is None else f"{fmt_duration(seconds)} ago"


def _symbols() -> tuple[str, str]:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗—".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "OK", "X"
    return "✓", "✗"


def _dash() -> str:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "—".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "-"
    return "—"


def _emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [cell.ljust(widths[i]) for i, cell in enumerate(cells)]
        return "  ".join(parts).rstrip()

    click.echo(line(headers))
    for row in rows:
        click.echo(line(row))


def _kv(pairs: Sequence[tuple[str, str]], indent: str = "") -> None:
    width = max((len(k) for k, _ in pairs), default=0) + 1
    for key, value in pairs:
        click.echo(f"{indent}{(key + ':').ljust(width)} {value}")


def _action_text(action: dict[str, Any]) -> str:
    kind = action.get("kind")
    if kind == "command":
        return str(action.get("command"))
    if kind == "python":
        return f"python {action.get('target')}"
    return f"{kind}: {json.dumps({k: v for k, v in action.items() if k != 'kind'})}"


def _schedule_text(job: dict[str, Any]) -> str:
    sched = job.get("schedule") or {}
    text = str(sched.get("display") or sched.get("expr") or sched)
    if sched.get("tz"):
        text += f" ({sched['tz']})"
    return text


def _repeat_text(job: dict[str, Any]) -> str:
    rep = job.get("repeat") or {}
    done = int(rep.get("completed") or 0)
    times = rep.get("times")
    return f"{done} of {times}" if times else f"{done} (forever)"


def _job_label(job: dict[str, Any]) -> str:
    return f"{job['id']} ({job.get('name')})"


# -- shared helpers -------------------------------------------------------------------------------


def _config(*, store: bool = False) -> dict[str, Any]:
    """Load config.yaml (and, with ``store``, parse ``jobs.json``) before anything is written.

    A broken config or a corrupt store then fails the verb before it takes a
    lock or creates a file.
    """
    cfg = load_config()
    if store:
        from cron.store import get_store

        get_store().count()
    return cfg


def resolve_job(ref: str) -> dict[str, Any]:
    """The job whose id is ``ref``, else the one job named ``ref``; else exit 2."""
    from cron import jobs

    all_jobs = jobs.list_jobs()
    for job in all_jobs:
        if job.get("id") == ref:
            return job
    named = [j for j in all_jobs if j.get("name") == ref]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        ids = ", ".join(j["id"] for j in named)
        _fail(f"the name {ref!r} matches {len(named)} jobs ({ids}); use the id instead")
    _fail(f"no job with id or name {ref!r} (see 'cronkit list --all')")


def _refuse_duplicate_name(name: str, *, except_id: str | None = None) -> None:
    """Exit 2 if an active job (not ``except_id``) already has ``name``: it would make the
    name ambiguous wherever a job is referred to by name."""
    from cron import jobs
    from cron.claim import is_active

    wanted = name.strip()
    for job in jobs.list_jobs():
        if job.get("name") == wanted and is_active(job) and job.get("id") != except_id:
            _fail(f"an active job already has the name {wanted!r} ({job['id']}); choose "
                  "another name or pass --allow-duplicate-name")


def _ticker_warning(cfg: dict[str, Any]) -> None:
    """Warn on stderr when nothing will fire the jobs; never fails the verb."""
    from cron.status import ticker_status

    try:
        st = ticker_status(cfg=cfg)
    except Exception:
        log.debug("ticker status unavailable", exc_info=True)
        return
    dash = _dash()
    if st.state == "stopped":
        _stderr(
            f"cronkit: warning: no ticker is running {dash} jobs will NOT fire; "
            "start one with 'cronkit gateway'"
        )
    elif st.state == "stalled":
        _stderr(
            f"cronkit: warning: the ticker is STALLED (last heartbeat {st.heartbeat_age or 0:.0f}s "
            f"ago) {dash} jobs are NOT firing; see 'cronkit status'"
        )
    elif st.state == "failing":
        _stderr(
            f"cronkit: warning: the ticker is FAILING {dash} jobs are NOT firing; "
            "see 'cronkit status'"
        )


def _warn_six_fields(schedule: dict[str, Any]) -> None:
    """One stderr line when a six-field expression fires many times a minute (SPEC §14)."""
    from cron.schedule import six_field_warning

    warning = six_field_warning(schedule, dash=_dash())
    if warning is not None:
        _stderr(f"cronkit: warning: {warning}")


def _parse_repeat(value: str | None) -> tuple[bool, int | None]:
    """``--repeat``: a whole number >= 1, or ``forever``. Returns (given, times)."""
    if value is None:
        return False, None
    text = value.strip().lower()
    if text in ("forever", "always", "inf", "unlimited"):
        return True, None
    try:
        times = int(text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a whole number >= 1 or 'forever'", param_hint="'--repeat'"
        ) from None
    if times < 1:
        raise click.BadParameter(f"{value!r} must be >= 1 (or 'forever')", param_hint="'--repeat'")
    return True, times


def _parse_timeout(value: str | None, *, allow_default: bool) -> tuple[bool, float | None]:
    if value is None:
        return False, None
    text = value.strip().lower()
    if allow_default and text == "default":
        return True, None
    try:
        seconds = float(text.rstrip("s"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a number of seconds"
            + (" (or 'default')" if allow_default else ""),
            param_hint="'--timeout'",
        ) from None
    if seconds < 0 or seconds != seconds:
        raise click.BadParameter(
            f"{value!r} must be >= 0 (0 = no timeout)", param_hint="'--timeout'"
        )
    return True, seconds


def _parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """``--env K=V`` (repeatable) into a map; the library validates the names."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="'--env'")
        out[key] = value
    return out


def _cwd_option(value: str | None) -> str | None:
    """``--cwd DIR`` made absolute (relative to where cronkit runs); None: not given."""
    if value is None or value == "":
        return value
    return str(Path(value).expanduser().absolute())


def _here() -> str:
    """The directory cronkit was run from: ``add`` records it as the job's ``cwd``, as at(1)."""
    try:
        return str(Path.cwd())
    except FileNotFoundError:
        _fail("the current directory no longer exists; cd elsewhere or give --cwd DIR")


def _parse_retry(
    retries: str | None, backoff: str | None, *, allow_default: bool
) -> tuple[bool, dict[str, Any]]:
    """``--retries N`` / ``--retry-backoff DURATION`` as retry keys; ``default`` (edit) = None.

    Returns ``(given, keys)``; a key mapped to None is removed from the job's field.
    """
    from cron.retry import MAX_RETRIES, parse_duration

    keys: dict[str, Any] = {}
    if retries is not None:
        text = retries.strip().lower()
        if allow_default and text == "default":
            keys["max"] = None
        else:
            try:
                count = int(text)
            except ValueError:
                raise click.BadParameter(
                    f"{retries!r} is not a whole number of retries"
                    + (" (or 'default')" if allow_default else ""), param_hint="'--retries'",
                ) from None
            if not 0 <= count <= MAX_RETRIES:
                raise click.BadParameter(f"{retries!r} must be 0 to {MAX_RETRIES}",
                                         param_hint="'--retries'")
            keys["max"] = count
    if backoff is not None:
        if allow_default and backoff.strip().lower() == "default":
            keys["backoff"] = None
        else:
            try:
                seconds = parse_duration(backoff, what="--retry-backoff")
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="'--retry-backoff'") from None
            keys["backoff"] = int(seconds) if seconds == int(seconds) else seconds
    return bool(keys), keys


def _command_text(command: Sequence[str]) -> str:
    # One argument is a shell command line as written ("a && b"); several are argv words.
    return command[0] if len(command) == 1 else shlex.join(command)


def _ledger_exists() -> bool:
    # Reading history must not create a ledger: only look if its file is there.
    return Path(_ledger_location()).exists()


# -- the group ------------------------------------------------------------------------------------


@click.group(
    cls=_CronkitGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("-v", "--verbose", count=True, help="Log to stderr (-v info, -vv debug).")
@click.version_option(__version__, "--version", prog_name="cronkit")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """cronkit: fire jobs exactly when due, never twice, never silently stop.

    Jobs are referred to by id or by their (unique) name.
    """
    global _verbosity
    _verbosity = verbose
    _setup_logging(verbose)
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    # A verb that changes jobs tells a configured external provider (e.g. the crontab)
    # for as long as it runs; a host using cron.jobs directly never resolves plugins.
    from cron.changes import bus
    from cron.scheduler_provider import notify_jobs_changed

    bus.subscribe(notify_jobs_changed)
    ctx.call_on_close(lambda: bus.unsubscribe(notify_jobs_changed))
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


# -- add / list / show ----------------------------------------------------------------------------


@main.command(
    "add",
    context_settings={"allow_interspersed_args": True},
    short_help="Add a job: SCHEDULE -- COMMAND... or --python pkg.mod:func.",
)
@click.argument("schedule")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--python", "target", metavar="PKG.MOD:FUNC", help="Call a Python function.")
@click.option("--name", help="A name for the job (usable instead of the id).")
@click.option("--repeat", metavar="N", help="Fire N times, then complete (default: forever).")
@click.option("--tz", metavar="ZONE", help="IANA zone to read a cron expression in.")
@click.option("--catch-up", type=click.Choice(["once", "skip"]), help="Missed-run policy.")
@click.option("--timeout", metavar="S", help="Seconds before a run is killed (0 = none).")
@click.option("--retries", metavar="N",
              help="Run a failed slot again up to N times (default: cron.retry.max).")
@click.option("--retry-backoff", metavar="DURATION",
              help="Wait before the first retry, doubling after (30s, 2m; default: "
                   "cron.retry.backoff).")
@click.option("--allow-duplicate-name", is_flag=True,
              help="Allow a name an active job already has.")
@click.option("--disabled", is_flag=True, help="Create the job paused.")
@click.option("--cwd", "cwd", metavar="DIR",
              help="Directory the job runs in (default: the current directory).")
@click.option("--env", "env_pairs", metavar="NAME=VALUE", multiple=True,
              help="Set an environment variable for the command (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the created job as JSON.")
def add_cmd(
    schedule: str,
    command: tuple[str, ...],
    target: str | None,
    name: str | None,
    repeat: str | None,
    tz: str | None,
    catch_up: str | None,
    timeout: str | None,
    retries: str | None,
    retry_backoff: str | None,
    allow_duplicate_name: bool,
    disabled: bool,
    cwd: str | None,
    env_pairs: tuple[str, ...],
    as_json: bool,
) -> None:
    """Add a job firing on SCHEDULE.

    \b
    SCHEDULE: '0 9 * * 1-5', '@daily', 'every 30m', '30m', 'in 2h', '2026-12-01T09:00'.
    The action is the COMMAND after '--' (one argument is run as a shell
    command line as written; several are quoted and joined) or --python.
    It runs in the directory 'add' was run from, unless --cwd says otherwise.
    """
    cfg = _config(store=True)
    if command and target:
        raise click.UsageError("give either a command after '--' or --python, not both")
    if not command and not target:
        raise click.UsageError("missing the action: add '-- COMMAND...' or '--python pkg.mod:func'")
    _, times = _parse_repeat(repeat)
    _, seconds = _parse_timeout(timeout, allow_default=False)
    env = _parse_env(env_pairs) or None
    work_dir = _cwd_option(cwd) if cwd is not None else _here()
    _, retry = _parse_retry(retries, retry_backoff, allow_default=False)
    if name is not None and not allow_duplicate_name:
        _refuse_duplicate_name(name)
    action: dict[str, Any] = (
        {"kind": "python", "target": target}
        if target
        else {"kind": "command", "command": _command_text(command)}
    )
    from cron import jobs

    job = jobs.create_job(
        schedule, action, name=name, repeat=times, enabled=not disabled, tz=tz,
        catch_up=catch_up, timeout=seconds, cwd=work_dir, env=env, retry=retry or None,
    )
    _warn_six_fields(job["schedule"])
    if as_json:
        _emit_json(job)
    else:
        click.echo(f"added job {job['id']} ({job['name']})")
        next_run = fmt_time(job.get("next_run_at")) if job.get("next_run_at") else (
            "none (created paused; 'cronkit resume' to start it)"
        )
        _kv([("schedule", _schedule_text(job)), ("next run", next_run)], indent="  ")
    if not disabled:
        _ticker_warning(cfg)


@main.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include paused and completed jobs.")
@click.option("--json", "as_json", is_flag=True, help='Print {"jobs": [...]}.')
def list_cmd(show_all: bool, as_json: bool) -> None:
    """List active jobs (--all: every job)."""
    cfg = _config()
    from cron import jobs

    listed = jobs.list_jobs(include_disabled=show_all)
    active = [j for j in listed if j.get("enabled", True) and j.get("state") == "scheduled"]
    if as_json:
        _emit_json({"jobs": listed})
    elif not listed:
        if show_all:
            click.echo("no jobs; add one with 'cronkit add SCHEDULE -- COMMAND'")
        else:
            click.echo("no active jobs ('cronkit list --all' includes paused and completed ones)")
    else:
        now = datetime.now(UTC)
        zone = _zone()
        rows = []
        for job in listed:
            last = "-"
            if job.get("last_status"):
                last = str(job["last_status"])
                if job.get("last_run_at"):
                    last += f" {fmt_relative(_to_dt(job['last_run_at']) or now, now)}"
            state = str(job.get("state"))
            if job.get("fire_claim"):
                state += ", running"
            rows.append([
                job["id"], str(job.get("name")), _schedule_text(job),
                fmt_next_run(job.get("next_run_at"), now=now, zone=zone), last, state,
            ])
        _table(["ID", "NAME", "SCHEDULE", "NEXT RUN", "LAST", "STATE"], rows)
    if active:
        _ticker_warning(cfg)


@main.command("show")
@click.argument("job_ref", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the job as stored.")
def show_cmd(job_ref: str, as_json: bool) -> None:
    """Show one job in full."""
    cfg = _config()
    job = resolve_job(job_ref)
    if as_json:
        _emit_json(job)
        return
    now = datetime.now(UTC)
    zone = _zone()
    pairs: list[tuple[str, str]] = [
        ("id", job["id"]),
        ("name", str(job.get("name"))),
        ("schedule", _schedule_text(job)),
        ("action", _action_text(job.get("action") or {})),
        ("cwd", str(job.get("cwd") or f"{paths.home()} (the cronkit home)")),
        *([("env", " ".join(f"{k}={shlex.quote(v)}" for k, v in job["env"].items()))]
          if job.get("env") else []),
        ("state", str(job.get("state")) + ("" if job.get("enabled", True) else " (disabled)")),
        ("next run", fmt_next_run(job.get("next_run_at"), now=now, zone=zone, empty="none")),
        ("last run", fmt_time(job.get("last_run_at"), now=now, zone=zone, empty="never")
         + (f" - {job['last_status']}" if job.get("last_status") else "")),
    ]
    if job.get("last_error"):
        pairs.append(("last error", _one_line(str(job["last_error"]))))
    pairs.append(("failure streak", str(job.get("failure_streak") or 0)))
    pairs.append(("runs", _repeat_text(job)))
    default_catch = cfg_get(cfg, "cron", "catch_up", default="once")
    pairs.append(("catch-up", str(job["catch_up"]) if job.get("catch_up") else
                  f"{default_catch} (config default)"))
    if job.get("timeout") is not None:
        tmo = float(job["timeout"])
        pairs.append(("timeout", "none" if tmo == 0 else f"{tmo:g}s"))
    else:
        tmo = float(cfg_get(cfg, "cron", "job_timeout", default=600))
        pairs.append(("timeout", ("none" if tmo == 0 else f"{tmo:g}s") + " (config default)"))
    from cron.retry import policy_for

    policy = policy_for(job, cfg)
    origin = "" if job.get("retry") else " (config default)"
    pairs.append(("retries", f"none{origin}" if policy.max <= 0 else
                  f"up to {policy.max}, backoff {policy.backoff:g}s doubling, at most "
                  f"{policy.max_backoff:g}s{origin}"))
    if job.get("key"):
        pairs.append(("key", str(job["key"])))
    if job.get("state") == "paused":
        reason = job.get("paused_reason") or "no reason given"
        pairs.append(("paused", f"{fmt_time(job.get('paused_at'), now=now, zone=zone)}: {reason}"))
    claim = job.get("fire_claim")
    if claim:
        pairs.append(("running", f"claimed {fmt_time(claim.get('at'), now=now, zone=zone)} "
                      f"by {claim.get('by')} for slot "
                      f"{fmt_time(claim.get('scheduled_at'), zone=zone, relative=False)}"))
        if claim.get("attempt"):
            pairs.append(("attempt", f"{claim['attempt']} (retry; starts "
                          f"{fmt_time(claim.get('retry_at'), now=now, zone=zone)})"))
    pairs.append(("created", fmt_time(job.get("created_at"), now=now, zone=zone)))
    from cron.output import list_outputs, read_output

    outputs = list_outputs(job["id"])
    if outputs:
        pairs.append(("last output", str(outputs[-1])))
    _kv(pairs)
    if outputs:
        lines = read_output(outputs[-1]).splitlines()
        if lines:
            click.echo("")
            shown = lines[-10:]
            if len(lines) > len(shown):
                click.echo(f"  ... ({len(lines) - len(shown)} earlier lines)")
            for text in shown:
                click.echo(f"  | {text}")


# -- edit / pause / resume / remove ---------------------------------------------------------------


@main.command("edit")
@click.argument("job_ref", metavar="ID")
@click.option("--schedule", help="New schedule text (recomputes the next run).")
@click.option("--name", help="New name.")
@click.option("--command", help="New shell command line.")
@click.option("--python", "target", metavar="PKG.MOD:FUNC", help="New Python target.")
@click.option("--repeat", metavar="N|forever", help="Total number of runs, or 'forever'.")
@click.option("--tz", metavar="ZONE", help="Zone for a cron expression ('' = configured zone).")
@click.option("--catch-up", type=click.Choice(["once", "skip", "default"]),
              help="Missed-run policy ('default' = config).")
@click.option("--timeout", metavar="S|default", help="Run timeout in seconds (0 = none).")
@click.option("--cwd", "cwd", metavar="DIR",
              help="Directory the job runs in ('' = the cronkit home).")
@click.option("--env", "env_pairs", metavar="NAME=VALUE", multiple=True,
              help="Set (or replace) one environment variable (repeatable).")
@click.option("--clear-env", is_flag=True, help="Remove the job's environment variables first.")
@click.option("--retries", metavar="N|default",
              help="Retries of a failed slot ('default' = cron.retry.max).")
@click.option("--retry-backoff", metavar="DURATION|default",
              help="Wait before the first retry, doubling after ('default' = config).")
@click.option("--json", "as_json", is_flag=True, help="Print the updated job as JSON.")
def edit_cmd(
    job_ref: str,
    schedule: str | None,
    name: str | None,
    command: str | None,
    target: str | None,
    repeat: str | None,
    tz: str | None,
    catch_up: str | None,
    timeout: str | None,
    cwd: str | None,
    env_pairs: tuple[str, ...],
    clear_env: bool,
    retries: str | None,
    retry_backoff: str | None,
    as_json: bool,
) -> None:
    """Change a job's fields; the rest stay as they are."""
    _config(store=True)
    if command is not None and target is not None:
        raise click.UsageError("give either --command or --python, not both")
    changes: dict[str, Any] = {}
    if schedule is not None:
        changes["schedule"] = schedule
    if name is not None:
        changes["name"] = name
    if command is not None:
        changes["action"] = {"kind": "command", "command": command}
    if target is not None:
        changes["action"] = {"kind": "python", "target": target}
    given, times = _parse_repeat(repeat)
    if given:
        changes["repeat"] = times
    if tz is not None:
        changes["tz"] = tz
    if catch_up is not None:
        changes["catch_up"] = None if catch_up == "default" else catch_up
    given, seconds = _parse_timeout(timeout, allow_default=True)
    if given:
        changes["timeout"] = seconds
    if cwd is not None:
        changes["cwd"] = _cwd_option(cwd) or None
    env_set = _parse_env(env_pairs)
    retry_given, retry_keys = _parse_retry(retries, retry_backoff, allow_default=True)
    if not changes and not env_set and not clear_env and not retry_given:
        raise click.UsageError(
            "nothing to change: give at least one of --schedule, --name, --command, --python, "
            "--repeat, --tz, --catch-up, --timeout, --cwd, --env, --clear-env, --retries, "
            "--retry-backoff"
        )
    job = resolve_job(job_ref)
    if env_set or clear_env:
        changes["env"] = {**({} if clear_env else dict(job.get("env") or {})), **env_set}
    from cron import jobs

    if retry_given:
        merged = {**(job.get("retry") or {}), **retry_keys}
        merged = {k: v for k, v in merged.items() if v is not None}
        changes["retry"] = merged or None

    updated = jobs.update_job(job["id"], **changes)
    if as_json:
        _emit_json(updated)
        return
    click.echo(f"updated job {_job_label(updated)}")
    _kv([
        ("schedule", _schedule_text(updated)),
        ("state", str(updated.get("state"))),
        ("next run", fmt_time(updated.get("next_run_at"), empty="none")),
    ], indent="  ")


@main.command("pause")
@click.argument("job_ref", metavar="ID")
@click.option("--reason", help="Why (shown by 'show').")
def pause_cmd(job_ref: str, reason: str | None) -> None:
    """Stop a job firing until it is resumed."""
    _config(store=True)
    job = resolve_job(job_ref)
    from cron import jobs

    paused = jobs.pause_job(job["id"], reason=reason)
    click.echo(f"paused job {_job_label(paused)}" + (f": {reason}" if reason else ""))


@main.command("resume", short_help="Fire a paused job again (no burst of missed runs).")
@click.argument("job_ref", metavar="ID")
def resume_cmd(job_ref: str) -> None:
    """Fire a paused job again, from its next slot after now (no burst of missed runs)."""
    _config(store=True)
    job = resolve_job(job_ref)
    from cron import jobs

    resumed = jobs.resume_job(job["id"])
    if resumed.get("state") == "completed":
        click.echo(f"job {_job_label(resumed)} is completed: "
                   f"{resumed.get('last_error') or 'its last run time has passed'}")
        return
    click.echo(f"resumed job {_job_label(resumed)}; next run "
               f"{fmt_time(resumed.get('next_run_at'), empty='none')}")


@main.command("remove")
@click.argument("job_ref", metavar="ID")
def remove_cmd(job_ref: str) -> None:
    """Delete a job (its history and output files are kept)."""
    _config(store=True)
    job = resolve_job(job_ref)
    from cron import jobs

    if not jobs.remove_job(job["id"]):
        raise JobNotFoundError(job["id"])
    click.echo(f"removed job {_job_label(job)}")


# -- run / fire / tick ----------------------------------------------------------------------------


def _run_fired(job_id: str, fired: Any, label: str, started: float) -> int:
    """Run a job this process claimed; print the outcome; 0 on success, 1 on failure."""
    from cron import executions, scheduler

    job, token = fired.job, fired.token
    if job is None or token is None:
        click.echo(f"not run: job {job_id} was removed or re-claimed before it could run")
        return EXIT_OK
    ok = scheduler.run_one_job(job)
    took = time.monotonic() - started
    row = executions.get_execution(token, attempts=True) or {}
    # A retried slot ends on its last attempt: report that row, not the first.
    for later in executions.list_executions(job_id, limit=20, attempts=True):
        if later.get("scheduled_at") == row.get("scheduled_at"):
            if int(later.get("attempt") or 1) > int(row.get("attempt") or 1):
                row = later
            break
    status = row.get("status") or ("ok" if ok else "error")
    line = f"{label} {_job_label(job)}: {status} in {took:.2f}s"
    if int(row.get("attempt") or 1) > 1:
        line += f" (attempt {row['attempt']})"
    if row.get("error") and not ok:
        line += f" - {_one_line(str(row['error']))}"
    click.echo(line)
    if row.get("output_path"):
        click.echo(f"output: {row['output_path']}")
    return EXIT_OK if ok else EXIT_FAILED


@main.command("run", short_help="Run a job now, synchronously, through the claim.")
@click.argument("job_ref", metavar="ID")
@click.option("--via-webhook", is_flag=True,
              help="Sign and POST the fire to the running gateway instead of running here.")
@click.pass_context
def run_cmd(ctx: click.Context, job_ref: str, via_webhook: bool) -> None:
    """Run a job now, synchronously, through the claim (a paused job runs once, stays paused).

    Exit 0 if the run succeeded, 1 if it failed or could not start.
    """
    _config(store=True)
    job = resolve_job(job_ref)
    if via_webhook:
        ctx.exit(_post_webhook(job))
    from cron.claim import ClaimReason
    from cron.scheduler import fire_job

    started = time.monotonic()
    fired = fire_job(job["id"], force=True, source="manual")
    outcome = fired.outcome
    if outcome.token is None:
        if outcome.code is ClaimReason.COMPLETED:
            _fail(f"job {_job_label(job)} is completed; give it a new schedule with "
                  f"'cronkit edit {job['id']} --schedule ...' to run it again")
        if outcome.code is ClaimReason.NO_SUCH_JOB:
            raise JobNotFoundError(job["id"])
        _fail(f"not run: {outcome.reason}", EXIT_FAILED)
    code = _run_fired(job["id"], fired, "ran job", started)
    if job.get("state") == "paused":
        click.echo("(the job stays paused)")
    ctx.exit(code)


def _post_webhook(job: dict[str, Any]) -> int:
    from cron.webhook import post_fire

    try:
        status, body = post_fire(job["id"])
    except ConnectionError as exc:
        if isinstance(exc, CronkitError):
            raise  # its message already names the problem and the fix
        _fail(f"no gateway webhook answered ({exc}); start one with 'cronkit gateway'")
    detail = body.get("reason") or body.get("error") or body.get("status") or ""
    line = f"webhook: HTTP {status}" + (f" {detail}" if detail else "")
    if 200 <= status < 300:
        click.echo(f"{line}; job {_job_label(job)} runs in the gateway ('cronkit history "
                   f"{job['id']}' shows the result)")
        return EXIT_OK
    if status == 409:
        click.echo(line)
        return EXIT_FAILED
    _fail(line + ("; the secret in webhook_secret does not match the gateway's"
                  if status == 401 else ""))


def _fire_source(cfg: dict[str, Any]) -> str:
    name = str(cfg_get(cfg, "cron", "provider", default="") or "").strip()
    from cron.scheduler_provider import BUILTIN_ALIASES, resolve_cron_scheduler

    if name.lower() in BUILTIN_ALIASES:
        return "manual"
    provider = resolve_cron_scheduler(cfg)
    return "manual" if provider.name == "builtin" else provider.name


@main.command("fire", short_help="Fire a due job as an external scheduler would.")
@click.argument("job_ref", metavar="ID")
@click.option("--scheduled-at", metavar="ISO",
              help="The slot being fired (naive = configured zone).")
@click.pass_context
def fire_cmd(ctx: click.Context, job_ref: str, scheduled_at: str | None) -> None:
    """Fire a due job as an external scheduler would: a lost claim is a no-op (exit 0)."""
    cfg = _config(store=True)
    job = resolve_job(job_ref)
    from cron.claim import ClaimReason
    from cron.schedule import parse_instant
    from cron.scheduler import fire_job

    slot = parse_instant(scheduled_at) if scheduled_at is not None else None
    started = time.monotonic()
    fired = fire_job(job["id"], scheduled_at=slot, source=_fire_source(cfg))
    outcome = fired.outcome
    if outcome.token is None:
        if outcome.code is ClaimReason.NO_SUCH_JOB:
            raise JobNotFoundError(job["id"])
        click.echo(f"not fired: job {_job_label(job)}: {outcome.reason}")
        ctx.exit(EXIT_OK)
    ctx.exit(_run_fired(job["id"], fired, "fired job", started))


@main.command("tick")
def tick_cmd() -> None:
    """Run one synchronous tick: claim every due job and run it here."""
    _config(store=True)
    from cron import scheduler

    count = scheduler.tick(sync=True)
    click.echo(f"tick: dispatched {count} job{'s' if count != 1 else ''}")


# -- next / history -------------------------------------------------------------------------------


def preview_times(text: str, count: int, tz: str | None, now: datetime) -> tuple[
    dict[str, Any], tzinfo, list[datetime]
]:
    """The next ``count`` fire instants of schedule ``text`` after ``now`` (interval: from now)."""
    from cron.schedule import compute_next_run, parse_schedule, resolve_zone

    zone = resolve_zone(tz) if tz else _zone()
    sched = parse_schedule(text, tz=tz, now=now)
    times: list[datetime] = []
    after = now
    while len(times) < count:
        nxt = compute_next_run(sched, after=after, tz=tz)
        if nxt is None:
            break
        times.append(nxt)
        after = nxt
    return sched, zone, times


@main.command("next")
@click.argument("schedule")
@click.option("-n", "count", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="How many fire times.")
@click.option("--tz", metavar="ZONE", help="Zone to read and show the times in.")
@click.option("--json", "as_json", is_flag=True, help='Print {"schedule", "zone", "times"}.')
def next_cmd(schedule: str, count: int, tz: str | None, as_json: bool) -> None:
    """Preview the next fire times of any SCHEDULE text (DST-aware)."""
    _config()
    now = datetime.now(UTC)
    sched, zone, times = preview_times(schedule, count, tz, now)
    _warn_six_fields(sched)
    if as_json:
        _emit_json({
            "schedule": sched,
            "zone": _zone_name(zone),
            "times": [t.astimezone(zone).isoformat() for t in times],
        })
        return
    click.echo(f"schedule: {sched.get('display')}   zone: {_zone_name(zone)}")
    if not times:
        click.echo("no fire times ahead (a one-shot in the past)")
        return
    width = len(str(len(times)))
    previous: str | None = None
    for i, t in enumerate(times, 1):
        local = t.astimezone(zone)
        offset = fmt_offset(local)
        note = f"   (UTC offset {previous} -> {offset})" if previous and previous != offset else ""
        click.echo(f"  {str(i).rjust(width)}. {fmt_time(t, now=now, zone=zone)}{note}")
        previous = offset


@main.command("history")
@click.argument("job_ref", metavar="[ID]", required=False)
@click.option("--limit", type=click.IntRange(1, 100000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help='Print {"executions": [...]}.')
def history_cmd(job_ref: str | None, limit: int, as_json: bool) -> None:
    """Recent runs from the ledger, newest first (all jobs, or one)."""
    _config()
    # A removed job's history is still in the ledger under its id.
    job_id = _job_id_for_ledger(job_ref) if job_ref is not None else None
    rows: list[dict[str, Any]] = []
    if _ledger_exists():
        from cron import executions

        rows = executions.list_executions(job_id, limit=limit, attempts=True)
    if as_json:
        _emit_json({"executions": rows})
        return
    if not rows:
        click.echo("no runs recorded yet")
        return
    now = datetime.now(UTC)
    zone = _zone()
    table = []
    for row in rows:
        when = row.get("started_at") or row.get("claimed_at") or row.get("finished_at")
        start, end = _to_dt(row.get("started_at")), _to_dt(row.get("finished_at"))
        took = f"{(end - start).total_seconds():.2f}s" if start and end else "-"
        table.append([
            fmt_time(when, now=now, zone=zone), str(row.get("job_name") or row.get("job_id")),
            str(row.get("status")), str(row.get("source") or "-"), took,
            fmt_time(row.get("scheduled_at"), zone=zone, relative=False),
            str(row.get("attempt") or 1),
            str(row.get("output_path") or "-"),
            _one_line(str(row["error"])) if row.get("error") else "-",
        ])
    # OUTPUT before ERROR: the path has no spaces, so the free-text error can end the line.
    _table(["WHEN", "JOB", "STATUS", "SOURCE", "TOOK", "SLOT", "ATTEMPT", "OUTPUT", "ERROR"],
           table)


FOLLOW_POLL = 0.2
"""Seconds between looks at a followed run's output file and ledger row."""


def _job_id_for_ledger(job_ref: str) -> str:
    """The id of job ``job_ref``, or of a removed job whose rows are still in the ledger."""
    try:
        return str(resolve_job(job_ref)["id"])
    except CliError:
        if not (_ledger_exists() and _ledger_has(job_ref)):
            raise
        return job_ref


def _pick_run(job_id: str, run_ref: str | None) -> dict[str, Any]:
    """The row ``logs`` shows: ``run_ref`` (an id or a unique prefix), else the newest run."""
    from cron import executions

    rows = executions.list_executions(job_id, limit=None) if _ledger_exists() else []
    if run_ref is not None:
        ref = run_ref.strip().lower()
        if not ref:
            _fail("--run needs a run id (see 'cronkit history')")
        exact = [r for r in rows if r["id"] == ref]
        found = exact or [r for r in rows if str(r["id"]).startswith(ref)]
        if len(found) > 1:
            _fail(f"run {run_ref!r} matches {len(found)} runs of job {job_id}; give more of its id")
        if not found:
            _fail(f"job {job_id} has no run {run_ref!r} (see 'cronkit history {job_id}')")
        return found[0]
    for row in rows:
        # Rows of slots that never ran (missed, skipped) have no output to show.
        if row.get("output_path") or row.get("status") in executions.LIVE_STATUSES:
            return row
    raise CliError(f"job {job_id} has no run with output yet", EXIT_FAILED)


class _Follower:
    """Copies new bytes of one output file to stdout; reopens it if it is replaced."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fh: Any = None
        self.inode: int | None = None

    def pump(self) -> bool:
        """Print what is new; False while the file does not exist."""
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = None
        if self.fh is not None and inode is not None and inode != self.inode:
            # Replaced at the end of the run (its output outgrew the streaming cap):
            # what follows is the kept tail, which says so in its first line.
            self.fh.close()
            self.fh = None
        if self.fh is None:
            if inode is None:
                return False
            try:
                self.fh = open(self.path, "rb")  # noqa: SIM115 - kept open across polls
            except FileNotFoundError:
                return False
            self.inode = os.fstat(self.fh.fileno()).st_ino
        # Bytes as written: a job's output need not be valid UTF-8.
        sys.stdout.flush()
        out = getattr(sys.stdout, "buffer", None)
        while chunk := self.fh.read(65536):
            if out is not None:
                out.write(chunk)
            else:
                sys.stdout.write(chunk.decode("utf-8", "replace"))
        (out or sys.stdout).flush()
        return True

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


@main.command("logs", short_help="Print (or follow) the output of a job's run.")
@click.argument("job_ref", metavar="ID")
@click.option("-f", "--follow", is_flag=True,
              help="Keep printing a run in progress until it ends.")
@click.option("--run", "run_ref", metavar="RUN",
              help="The run's ledger id or a unique prefix (default: the newest run).")
@click.pass_context
def logs_cmd(ctx: click.Context, job_ref: str, follow: bool, run_ref: str | None) -> None:
    """Print the output of the job's newest run (or of --run RUN); -f follows it while it runs.

    Exit 0 once the output is printed (with -f: once the run has ended), 1 when
    the job has no run with output yet or its file is gone, 2 on bad input.
    """
    _config()
    job_id = _job_id_for_ledger(job_ref)
    row = _pick_run(job_id, run_ref)
    from cron import executions

    tail: _Follower | None = None
    try:
        while True:
            # The row is read before the file: a row already final means the file is complete.
            final = row.get("status") not in executions.LIVE_STATUSES
            path = row.get("output_path")
            if path and tail is None:
                tail = _Follower(str(path))
            present = tail.pump() if tail is not None else False
            if final or not follow:
                if not present:
                    if path:
                        raise CliError(
                            f"the output file of run {row['id']} is gone: {path} (only the newest "
                            "cron.output_retention files are kept, on the machine that ran it)",
                            EXIT_FAILED,
                        )
                    raise CliError(f"run {row['id']} of job {job_id} has no output yet"
                                   + ("" if follow else "; -f follows it"), EXIT_FAILED)
                return
            time.sleep(FOLLOW_POLL)
            row = executions.get_execution(row["id"]) or {**row, "status": "unknown"}
    except KeyboardInterrupt:
        # Ctrl-C is how one stops following: one line, no traceback, the run goes on.
        _stderr("cronkit: interrupted")
        ctx.exit(EXIT_INTERRUPTED)
    finally:
        if tail is not None:
            tail.close()


@main.command("explain", short_help="Why a job did (not) fire, and whether it will.")
@click.argument("job_ref", metavar="ID")
@click.option("--limit", type=click.IntRange(0, 1000), default=5, show_default=True,
              help="How many of the job's last recorded slots to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
def explain_cmd(job_ref: str, limit: int, as_json: bool) -> None:
    """Explain a job in plain sentences: state, next slot, claim, last slots, the ticker."""
    cfg = _config()
    job = resolve_job(job_ref)
    from cron.explain import explain_job, format_explanation

    explanation = explain_job(job["id"], limit=limit, cfg=cfg)
    if as_json:
        _emit_json(explanation.to_dict())
        return
    for line in format_explanation(explanation):
        click.echo(line)


@main.command("verify", short_help="Audit: every slot owed got exactly one outcome (exit 0/1).")
@click.argument("job_ref", metavar="[JOB]", required=False)
@click.option("--since", metavar="ISO", help="Window start (default: --until minus 24 h).")
@click.option("--until", metavar="ISO", help="Window end (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print the audit report as JSON.")
@click.pass_context
def verify_cmd(ctx: click.Context, job_ref: str | None, since: str | None, until: str | None,
               as_json: bool) -> None:
    """Check the ledger: every slot each job owed in the window has exactly one outcome.

    Exit 0 when every slot is accounted for exactly once, 1 when a slot is lost
    or doubled, 2 on bad input.
    """
    _config()
    from cron.audit import format_report, verify
    from cron.schedule import parse_instant

    def instant(option: str, value: str | None) -> datetime | None:
        if value is None:
            return None
        try:
            return parse_instant(value)
        except ValueError:
            _fail(f"{option} {value!r} is not an ISO-8601 timestamp (e.g. 2026-12-01T09:00; "
                  "naive = the configured zone)")

    start, end = instant("--since", since), instant("--until", until)
    job_id: str | None = None
    if job_ref is not None:
        try:
            job_id = resolve_job(job_ref)["id"]
        except CliError:
            job_id = job_ref  # a removed job: the audit knows it from its events
    report = verify(job_id=job_id, since=start, until=end)
    if as_json:
        _emit_json(report.to_dict())
    else:
        for line in format_report(report, ok_mark=_symbols()[0], bad_mark=_symbols()[1]):
            click.echo(line)
    ctx.exit(report.exit_code)


def _ledger_has(job_id: str) -> bool:
    from cron import executions

    return bool(executions.list_executions(job_id, limit=1))


# -- status / providers / gateway -----------------------------------------------------------------


def error_hint(error: str | None) -> str | None:
    """A likely fix for a ticker error, for the common causes."""
    if not error:
        return None
    text = error.lower()
    jobs_file = paths.jobs_path()
    if "permission denied" in text or text.startswith("permissionerror"):
        target = str(jobs_file) if "jobs.json" in text else "the files under CRONKIT_HOME"
        return (f"the ticker cannot read or write {target}: make it owned by the user running "
                "the gateway (chown) with mode 0600 (chmod)")
    if "cannot parse job store" in text or "storecorrupterror" in text:
        return f"{jobs_file} is corrupt: fix it or move it aside (nothing is written until then)"
    if "waiting for the lock" in text or "storelocktimeout" in text:
        return "another cronkit process holds the store lock: look for a hung cronkit process"
    if "no space left" in text:
        return "the disk holding CRONKIT_HOME is full: free some space"
    if "read-only file system" in text:
        return "CRONKIT_HOME is on a read-only file system"
    if "config error" in text or "configerror" in text:
        return f"fix {paths.config_path()}"
    if "database is locked" in text or "malformed" in text or "not a database" in text:
        return f"the run ledger {_ledger_location()} is locked or damaged"
    return None


def status_lines(
    st: Any, *, now: datetime | None = None, store_error: str | None = None
) -> list[str]:
    """The verdict line, then aligned ``key: value`` lines, for a TickerStatus.

    Failing jobs and runaway runs follow, one indented ``✗`` line each.
    """
    from cron.status import read_ticker_pid

    ok, bad = _symbols()
    dash = _dash()
    limit = float(st.stale_after)
    pid = st.gateway_pid
    beat = "never" if st.heartbeat_age is None else f"{st.heartbeat_age:.0f}s ago"
    if st.state == "running":
        verdict = f"{ok} ticker running (pid {pid}): last heartbeat {beat}"
    elif st.state == "external":
        verdict = f"{ok} external provider {st.provider!r} triggers jobs"
        if st.detail:
            verdict += f": {_one_line(st.detail)}"
    elif st.state == "stalled":
        verdict = (f"{bad} ticker STALLED: last heartbeat {beat} (> {limit:.0f}s) {dash} "
                   "jobs are NOT firing; restart the gateway")
    elif st.state == "failing" and st.store_error:
        verdict = (f"{bad} ticker FAILING: the job store cannot be read {dash} jobs are NOT "
                   f"firing: {_one_line(st.store_error)}")
    elif st.state == "failing":
        clean = ("never completed a clean tick" if st.success_age is None
                 else f"last clean tick {st.success_age:.0f}s ago (> {limit:.0f}s)")
        err = f": {_one_line(st.last_error)}" if st.last_error else ""
        verdict = (f"{bad} ticker FAILING: ticks are raising, {clean} {dash} "
                   f"jobs are NOT firing{err}")
    elif st.state == "unknown":
        verdict = (f"? ticker state unknown: process {pid} is alive but has never "
                   "written a heartbeat")
    else:
        verdict = (f"{bad} ticker stopped: no gateway or embedded ticker is running {dash} "
                   "jobs will NOT fire; start one with 'cronkit gateway'")
    pairs: list[tuple[str, str]] = [("provider", st.provider)]
    if st.state != "external":
        info = read_ticker_pid()
        if pid is not None:
            pairs.append(("ticker pid", str(pid)))
        elif info is not None:
            pairs.append(("ticker pid", f"none (stale pid file: pid {info.get('pid')} is not "
                                        "running; left by a ticker that was killed or crashed)"))
        else:
            pairs.append(("ticker pid", "none"))
        pairs.append(("heartbeat", f"{_age(st.heartbeat_age)} (stale after {limit:.0f}s)"))
        pairs.append(("last success", _age(st.success_age)))
    pairs.append(("last error", _one_line(st.last_error) if st.last_error else "none"))
    hint = error_hint(st.last_error)
    if hint:
        pairs.append(("hint", hint))
    store_error = store_error or getattr(st, "store_error", None)
    if store_error:
        pairs.append(("job store", f"UNREADABLE: {_one_line(store_error)}"))
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
    width = max(len(k) for k, _ in pairs) + 1
    lines = [verdict] + [f"  {(k + ':').ljust(width)} {v}" for k, v in pairs]
    for job in failing:
        streak = int(job.get("failure_streak") or 0)
        err = _one_line(job.get("last_error") or job.get("last_status") or "no error recorded")
        lines.append(f"    {bad} {_job_label(job)}: {streak} failed run"
                     f"{'s' if streak != 1 else ''} in a row; last error: {err}")
    if total > len(failing):
        lines.append(f"    ... and {total - len(failing)} more ('cronkit list' shows them)")
    for run in runaway:
        label = _job_label({"id": run.get("job_id"), "name": run.get("name")})
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


def _stall_text(stall: dict[str, Any], *, now: datetime | None) -> str:
    """One line: the stall window and what became of the slots that came due in it."""
    start = fmt_time(stall["from"], now=now, zone=_zone())
    end = "now (ongoing)" if stall.get("ongoing") else fmt_time(stall["to"], now=now, zone=_zone())
    n = int(stall["slots"])
    parts = [f"{stall['fired']} fired (late, once each)",
             f"{stall['replaced_by_late_fire']} replaced by those late fires",
             f"{stall['missed']} missed", f"{stall['skipped']} skipped"]
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
    cfg = _config()
    from cron.status import ticker_status

    st = ticker_status(cfg=cfg)
    if as_json:
        _emit_json(st.to_dict())
    else:
        for line in status_lines(st):
            click.echo(line)
    ctx.exit(st.exit_code)


@main.command("providers")
@click.option("--json", "as_json", is_flag=True, help="Print providers and the selection.")
@click.option("--reconcile", is_flag=True,
              help="Converge the selected provider's external state (e.g. the crontab) now.")
def providers_cmd(as_json: bool, reconcile: bool) -> None:
    """List trigger providers and which one the config selects."""
    cfg = _config()
    from cron.plugins import discover_cron_schedulers
    from cron.scheduler_provider import BUILTIN_ALIASES, resolve_cron_scheduler

    if reconcile:
        _config(store=True)  # a corrupt store must fail here, not half-way through
        provider = resolve_cron_scheduler(cfg)
        provider.reconcile()
        describe = getattr(provider, "status_detail", None)
        detail = str(describe()) if callable(describe) else None
        if as_json:
            _emit_json({"reconciled": provider.name, "detail": detail})
            return
        suffix = f": {detail}" if detail is not None else ""
        click.echo(f"reconciled provider {provider.name}{suffix}")
        return

    configured = str(cfg_get(cfg, "cron", "provider", default="") or "").strip()
    found = discover_cron_schedulers()
    resolved = resolve_cron_scheduler(cfg).name
    rows: list[dict[str, Any]] = [{
        "name": "builtin", "description": "in-process ticker (core; always available, "
        "the fallback)", "available": True, "builtin": True,
    }]
    rows += [{"name": n, "description": d, "available": a, "builtin": False} for n, d, a in found]
    if as_json:
        _emit_json({"configured": configured, "resolved": resolved, "providers": rows})
        return
    _table(["PROVIDER", "AVAILABLE", "DESCRIPTION"],
           [[r["name"], "yes" if r["available"] else "no", r["description"]] for r in rows])
    click.echo("")
    if configured.lower() in BUILTIN_ALIASES:
        shown = repr(configured) if configured else "empty"
        click.echo(f"selected: builtin (cron.provider is {shown})")
    elif resolved == configured:
        click.echo(f"selected: {resolved} (cron.provider = {configured!r})")
    else:
        names = {n: a for n, _, a in found}
        why = "not found" if configured not in names else (
            "not available here" if not names[configured] else "failed to load")
        click.echo(f"selected: builtin - cron.provider = {configured!r} is {why}, "
                   "so the built-in ticker runs")


# -- apply (declared jobs) --------------------------------------------------------------------

_APPLY_FIELDS = ("key", "schedule", "command", "python", "name", "tz", "catch_up", "timeout",
                 "retry", "cwd", "env", "enabled")
_WOULD = {"created": "would create", "updated": "would update", "removed": "would remove"}


def _read_declarations(path: Path) -> list[dict[str, Any]]:
    """The ``jobs:`` entries of an apply file, shape-checked (one clear error, exit 2)."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        _fail(f"{path}: no such file")
    except UnicodeDecodeError as exc:
        _fail(f"{path}: not UTF-8 text ({exc.reason})")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        _fail(f"{where}: YAML syntax error: {problem}")
    if not isinstance(doc, dict) or set(doc) != {"jobs"} or not isinstance(doc["jobs"], list):
        _fail(f"{path}: expected a mapping with one key, 'jobs', holding a list of jobs")
    entries: list[dict[str, Any]] = doc["jobs"]
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        def bad(field: str, detail: str, *, _i: int = index, _e: object = entry) -> NoReturn:
            key = _e.get("key") if isinstance(_e, dict) else None
            label = f"entry {_i}" + (f" (key {key!r})" if key is not None else "")
            _fail(f"{path}: {label}: {field}: {detail}")

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
        env = {k: (("true" if v else "false") if isinstance(v, bool)
                   else str(v) if isinstance(v, int | float) else v) for k, v in env.items()}
    return cwd, env


def _declare_entry(entry: dict[str, Any], now: datetime, *, dry_run: bool,
                   base: Path = Path()) -> Any:
    from cron import jobs

    action: dict[str, Any] = (
        {"kind": "python", "target": entry["python"]} if "python" in entry
        else {"kind": "command", "command": entry["command"]}
    )
    return jobs.declare_job(
        entry["schedule"], action, key=entry["key"], name=entry.get("name"),
        enabled=entry.get("enabled"), tz=entry.get("tz"), catch_up=entry.get("catch_up"),
        timeout=entry.get("timeout"), retry=entry.get("retry"), now=now, dry_run=dry_run,
        cwd=_entry_where(entry, base)[0], env=_entry_where(entry, base)[1],
    )


def _entry_error_field(entry: dict[str, Any], exc: Exception) -> str:
    from cron.errors import ActionError, JobValueError, ScheduleError

    if isinstance(exc, JobValueError):
        return exc.field
    if isinstance(exc, ActionError):
        return "python" if "python" in entry else "command"
    if isinstance(exc, ScheduleError):
        tz = entry.get("tz")
        if tz is not None and exc.text == tz:
            return "tz"
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
    _config(store=True)
    from cron import jobs

    entries = _read_declarations(file)
    now = datetime.now(UTC)
    # Pass 1: every entry against the store, writing nothing; the first bad one stops it all.
    for index, entry in enumerate(entries):
        try:
            _declare_entry(entry, now, dry_run=True, base=file.parent)
        except (CronkitError, ValueError) as exc:
            field = _entry_error_field(entry, exc)
            _fail(f"{file}: entry {index} (key {entry.get('key')!r}): {field}: "
                  f"{_one_line(str(exc))}")
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


@main.group("store", short_help="Which job store is in use; copy jobs to another.")
def store_group() -> None:
    """The job store (cron.store / $CRONKIT_STORE): where jobs, runs and claims live."""


@store_group.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print the store description.")
def store_info_cmd(as_json: bool) -> None:
    """Backend, location (password masked), schema version and job count."""
    _config()
    from cron.store import get_store

    info = get_store().info()
    if as_json:
        _emit_json(info)
        return
    _kv([("backend", str(info["backend"])), ("url", str(info["url"] or "json")),
         ("location", str(info.get("location", ""))),
         ("schema version", str(info.get("schema_version"))), ("jobs", str(info["jobs"]))])


@store_group.command("copy")
@click.argument("url")
def store_copy_cmd(url: str) -> None:
    """Copy every job (ids and state unchanged) into the empty store at URL."""
    _config(store=True)
    from cron.store import get_store
    from cron.stores import open_store
    from cron.stores.copy import copy_jobs

    source = get_store()
    target = open_store(url)
    try:
        if target.url == source.url and target.ledger_path() == source.ledger_path():
            _fail(f"{url!r} is the configured store itself; nothing to copy")
        count = copy_jobs(source, target)
    finally:
        target.close()
    click.echo(f"copied {count} job(s) from {source.url} to {target.url}")

@main.command("install-service", short_help="Install a systemd unit running the gateway.")
@click.option("--user", "user_unit", is_flag=True,
              help="A user unit (~/.config/systemd/user) instead of a system one.")
@click.option("--print", "print_only", is_flag=True, help="Print the unit; write nothing.")
@click.option("--force", is_flag=True, help="Replace a different unit already installed.")
@click.option("--grace", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="The gateway's shutdown grace for running jobs, in seconds.")
def install_service_cmd(user_unit: bool, print_only: bool, force: bool, grace: float) -> None:
    """Write (or --print) a systemd unit that runs 'cronkit gateway' for this home."""
    _config()
    from cron.service import enable_command, install_unit, render_unit

    text = render_unit(user=user_unit, grace=grace)
    if print_only:
        click.echo(text, nl=False)
        return
    result = install_unit(text, user=user_unit, force=force)
    verb = "wrote" if result.changed else "unchanged:"
    click.echo(f"{verb} {result.path}")
    click.echo(f"next: {enable_command(user=user_unit)}")


@main.command("gateway", short_help="Run the trigger and the webhook in the foreground.")
@click.option("--host", help="Webhook bind address (default: cron.webhook.host).")
@click.option("--port", type=click.IntRange(0, 65535),
              help="Webhook port (default: cron.webhook.port).")
@click.option("--no-webhook", is_flag=True, help="Run the trigger only, no inbound webhook.")
@click.option("--interval", type=click.FloatRange(min=0.01), metavar="S",
              help="Longest ticker sleep (default: cron.interval).")
@click.option("--grace", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds to wait for running jobs on shutdown.")
@click.pass_context
def gateway_cmd(
    ctx: click.Context, host: str | None, port: int | None, no_webhook: bool,
    interval: float | None, grace: float,
) -> None:
    """Run the trigger (and the webhook) in the foreground; Ctrl-C / SIGTERM stop it."""
    _config()
    _setup_logging(int(ctx.obj.get("verbose", 0)) if ctx.obj else 0, daemon=True)
    from cron.gateway import run_gateway

    code = run_gateway(host=host, port=port, webhook=not no_webhook, interval=interval, grace=grace)
    ctx.exit(int(code or 0))


__all__ = ["main"]
