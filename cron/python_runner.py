"""The built-in ``python`` runner: import ``pkg.mod:func`` and call it (SPEC §6)."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from cron.call_threads import start_own_thread
from cron.run_types import RunContext, RunResult, Straggler, cap_text, one_line


def _resolve_target(target: str) -> Callable[..., Any]:
    """Import ``pkg.mod:attr.path`` and return the callable (exceptions propagate)."""
    module_name, _, attr_path = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    if not callable(obj):
        raise TypeError(f"{target!r} is not callable (got {type(obj).__name__})")
    return obj  # type: ignore[no-any-return]


_sys_path_lock = threading.Lock()


def _add_to_sys_path(directory: str | None) -> None:
    """Append a python job's ``cwd`` to ``sys.path`` (once) so its modules import.

    Appended, not prepended: a job's directory must never shadow the host's
    own modules (or another job's). It stays: modules imported from it stay
    cached anyway, and another thread may be importing from it right now.
    """
    if not directory:
        return
    with _sys_path_lock:
        if directory not in sys.path:
            sys.path.append(directory)


def target_import_problem(target: str, *, cwd: str | None = None) -> str | None:
    """Why ``target`` cannot be imported and called here, or None if it can.

    ``cwd`` is searched last, as the python runner does at run time. The
    gateway may have another ``sys.path``, so a problem here is a warning for
    the caller to pass on, not a reason to refuse the job.
    """
    added: str | None = None
    with _sys_path_lock:
        if cwd and cwd not in sys.path:
            sys.path.append(cwd)
            added = cwd
    try:
        _resolve_target(target)
    except Exception as exc:
        return f"cannot import python target {target!r} here: {one_line(exc)}"
    finally:
        if added is not None:
            with _sys_path_lock, contextlib.suppress(ValueError):
                sys.path.remove(added)
    return None


def _coerce_output(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _takes_no_argument(fn: Callable[..., Any]) -> bool:
    """True when ``fn`` has no positional parameter at all: it is called without the job.

    Anything that accepts a positional argument (``def f(job)``, ``def
    f(job=None)``, ``*args``) gets the job, as does a callable whose signature
    cannot be read (some builtins).
    """
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    )
    return not any(p.kind in positional for p in params)


def run_python(job: dict[str, Any], ctx: RunContext) -> RunResult:
    """Import ``action["target"]`` (``pkg.mod:func``, ``pkg.mod:obj.method``) and call it.

    A callable with no positional parameter is called without arguments; any
    other gets the job dict. The job's ``cwd``, if set, is appended to
    ``sys.path`` first (where ``cronkit add --python`` was run, so a module
    beside it imports). A returned string is the output (other values are ``str()``-ed, ``None``
    is empty). An ``Exception`` — including one raised while importing — is
    ``status="error"`` with ``"Type: message"`` and the traceback as output. A
    ``BaseException`` propagates to the caller. ``ctx.env`` is not applied:
    the process environment is shared by every thread.

    Note for implementers: with a timeout the callable runs in a daemon
    thread (``ctx.start_call``: the runtime's, reused between runs) and the
    caller stops waiting after ``ctx.timeout`` seconds,
    returning ``status="timeout"`` with a :class:`Straggler`. Python threads
    cannot be killed, so the callable keeps running in the background until
    it returns on its own (or dies with the process at exit); the scheduler
    keeps the job's claim until then. A runner that must really stop its work
    has to run it in a subprocess.
    """
    target = job["action"]["target"]
    timeout = ctx.timeout if ctx.timeout and ctx.timeout > 0 else None
    cwd = job.get("cwd")
    _add_to_sys_path(cwd if isinstance(cwd, str) else None)

    def call() -> object:
        fn = _resolve_target(target)
        return fn() if _takes_no_argument(fn) else fn(job)

    if timeout is None:
        try:
            value = call()
        except Exception as exc:
            return RunResult("error", cap_text(traceback.format_exc()), one_line(exc))
        return RunResult("ok", cap_text(_coerce_output(value)), None)

    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:
            box["exc"] = exc
            box["tb"] = traceback.format_exc()

    start = ctx.start_call or start_own_thread
    started = time.monotonic()
    done = start(worker, f"cronkit-python-{job.get('id')}")
    done.wait(timeout)

    def outcome() -> RunResult:
        failure: BaseException | None = box.get("exc")
        if failure is not None:
            if not isinstance(failure, Exception):
                raise failure
            return RunResult("error", cap_text(box["tb"]), one_line(failure))
        return RunResult("ok", cap_text(_coerce_output(box.get("value"))), None)

    if not done.is_set():

        def final() -> RunResult:
            took = time.monotonic() - started
            try:
                late = outcome()
            except BaseException as exc:  # noqa: B036 - the work is over; report how it ended
                late = RunResult("error", "", one_line(exc))
            ending = "returned" if late.status == "ok" else f"failed ({late.error})"
            return RunResult(
                "timeout",
                late.output,
                f"timed out after {timeout:g}s; the python callable could not be killed "
                f"and {ending} after {took:.1f}s",
            )

        return RunResult(
            "timeout",
            "",
            f"timed out after {timeout:g}s; the python callable cannot be killed and is "
            "still running in a background thread",
            straggler=Straggler(None, final, done),
        )
    return outcome()


__all__ = ["run_python", "target_import_problem"]
