"""How ``cronkit`` ends: exit codes, the one error line, and logging to stderr.

:class:`CronkitGroup` runs every verb; :func:`error_message` turns whatever a
verb raised into one line and an exit code, deciding by the exception's type
(and, for OS and SQLite errors, by their ``errno`` / SQLite result code) and
never by its message text.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from cron import paths
from cron.cli._format import one_line
from cron.errors import ConfigError, CronkitError

log = logging.getLogger("cron.cli")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A refusal the CLI itself decides on: one line on stderr, then ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


_DAMAGED = "; move the file aside (a new, empty ledger is created on the next run)"
_BUSY = "; another process holds the ledger lock, try again"
_SQLITE_HINTS = {
    sqlite3.SQLITE_CORRUPT: _DAMAGED,  # "database disk image is malformed"
    sqlite3.SQLITE_NOTADB: _DAMAGED,  # "file is not a database"
    sqlite3.SQLITE_BUSY: _BUSY,  # "database is locked"
    sqlite3.SQLITE_LOCKED: _BUSY,  # "database table is locked"
}
"""The fix named after a SQLite error, by its primary result code."""


def _sqlite_primary_code(exc: sqlite3.Error) -> int | None:
    # Extended codes (SQLITE_BUSY_SNAPSHOT, ...) carry the primary one in their low byte.
    # None when the sqlite3 module raised the error itself (no SQLite result code).
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


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
        return one_line(str(exc)), exc.exit_code
    if isinstance(exc, click.UsageError):
        msg = exc.format_message()
        if exc.ctx is not None:
            msg += f" (see '{exc.ctx.command_path} --help')"
        return one_line(msg), EXIT_BAD_INPUT
    if isinstance(exc, click.ClickException):
        return one_line(exc.format_message()), exc.exit_code
    if isinstance(exc, ConfigError):
        return one_line(f"{exc}; fix {paths.config_path()}"), EXIT_BAD_INPUT
    if isinstance(exc, CronkitError):
        return one_line(str(exc)), EXIT_BAD_INPUT
    if isinstance(exc, sqlite3.Error):
        code = _sqlite_primary_code(exc)
        hint = _SQLITE_HINTS.get(code, "") if code is not None else ""
        return one_line(f"run ledger {ledger_location()}: {exc}{hint}"), EXIT_BAD_INPUT
    if isinstance(exc, OSError):
        return one_line(_os_error_line(exc)), EXIT_BAD_INPUT
    if isinstance(exc, KeyError):
        key = exc.args[0] if exc.args else "?"
        return one_line(f"unknown key {key!r}"), EXIT_BAD_INPUT
    if isinstance(exc, ValueError):
        return one_line(str(exc) or type(exc).__name__), EXIT_BAD_INPUT
    return (
        one_line(f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)"),
        EXIT_FAILED,
    )


def ledger_location() -> str:
    from cron.store import get_store

    try:
        return get_store().ledger().location
    except Exception:
        return str(paths.executions_path())


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    raise CliError(message, code)


class CronkitGroup(click.Group):
    """Runs every verb in non-standalone mode and renders every error as one line."""

    verbosity = 0
    """The ``-v`` count of the invocation being run (the root callback sets it)."""

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
        self.verbosity = 0
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except (click.Abort, KeyboardInterrupt):
            echo_err("cronkit: interrupted")
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

    def _report(self, exc: BaseException) -> int:
        message, code = error_message(exc)
        if self.verbosity > 0 and not isinstance(exc, click.ClickException | CliError):
            log.error("traceback of the error below", exc_info=exc)
        echo_err(f"cronkit: error: {message}")
        return code


def echo_err(line: str) -> None:
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
        fmt = (
            "%(asctime)s %(levelname)s %(name)s: %(message)s"
            if verbose
            else ("cronkit: %(levelname_lower)s: %(message)s")
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


def setup_logging(verbosity: int, *, daemon: bool = False) -> None:
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
