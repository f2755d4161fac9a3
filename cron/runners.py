"""Runners: what "run this job's action" means for each action kind (the registry).

A runner is ``Callable[[dict, RunContext], RunResult]``: it receives the job
(whose ``action`` is already normalised by :func:`validate_action`) and the
run's context, and reports the outcome as a :class:`RunResult`. Runners must
not raise for an ordinary failure of the action; a ``BaseException``
(``KeyboardInterrupt``, ``SystemExit``) is allowed to propagate, and the caller
records it before re-raising.

Kinds are looked up in this order: the built-ins (``command``, ``python``),
then kinds added with :func:`register_runner`, then entry points in the group
``cronkit.runners`` (loaded lazily, on the first lookup that misses). A host
plugs in e.g. an AI-agent runner either way; explicit registration stays
possible because packagers sometimes drop entry-point metadata.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import re
import threading
import traceback
from typing import Any

from cron.command_runner import GATE_CANCELLED, _Pipe, run_command
from cron.errors import ActionError, JobValueError
from cron.python_runner import _resolve_target, run_python, target_import_problem
from cron.run_types import (
    DRAIN_GRACE,
    MAX_OUTPUT_BYTES,
    TERM_GRACE,
    OutputSink,
    RunContext,
    Runner,
    RunResult,
    SpawnHook,
    Straggler,
    cap_text,
    one_line,
)

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "cronkit.runners"

_TARGET_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


_registered: dict[str, Runner] = {}
_entry_point_runners: dict[str, Runner] = {}
_lock = threading.Lock()


# --- registry ---------------------------------------------------------------


def register_runner(kind: str, fn: Runner) -> None:
    """Add (or replace) the runner for ``kind``.

    Built-in kinds cannot be replaced: they are looked up first, so a
    registration under their name would silently never run.
    """
    if not isinstance(kind, str) or not kind.strip():
        raise ValueError(f"runner kind must be a non-empty string, got {kind!r}")
    if kind in _BUILTINS:
        raise ValueError(f"runner kind {kind!r} is built in and cannot be replaced")
    if not callable(fn):
        raise TypeError(f"runner for kind {kind!r} must be callable, got {fn!r}")
    with _lock:
        _registered[kind] = fn


def unregister_runner(kind: str) -> None:
    """Remove a kind added with :func:`register_runner` (missing kinds are ignored)."""
    with _lock:
        _registered.pop(kind, None)


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _known_kinds() -> list[str]:
    names = set(_BUILTINS) | set(_registered) | set(_entry_point_runners)
    with contextlib.suppress(Exception):
        names.update(ep.name for ep in _entry_points())
    return sorted(names)


def get_runner(kind: str) -> Runner:
    """The runner for ``kind``: built-ins, then registered kinds, then entry points.

    Entry points are consulted only on a miss (so a broken third-party package
    cannot break the built-ins) and a loaded one is cached. Metadata is
    re-read on every miss, so a distribution that appears on ``sys.path`` later
    is still found. Raises :class:`ActionError` for an unknown kind (listing
    the known ones), an entry point that fails to import, or one that does not
    load a callable.
    """
    builtin = _BUILTINS.get(kind)
    if builtin is not None:
        return builtin
    with _lock:
        fn = _registered.get(kind) or _entry_point_runners.get(kind)
    if fn is not None:
        return fn
    for ep in _entry_points():
        if ep.name != kind:
            continue
        try:
            loaded = ep.load()
        except Exception as exc:
            raise ActionError(
                kind,
                f"runner entry point {ep.value!r} in group {ENTRY_POINT_GROUP!r} failed to "
                f"load: {type(exc).__name__}: {exc}",
            ) from exc
        if not callable(loaded):
            raise ActionError(
                kind,
                f"runner entry point {ep.value!r} did not load a callable (got {loaded!r})",
            )
        with _lock:
            _entry_point_runners[kind] = loaded
        return loaded  # type: ignore[no-any-return]
    raise ActionError(kind, f"unknown runner kind {kind!r}; known: {', '.join(_known_kinds())}")


# --- validation -------------------------------------------------------------


def validate_action(action: str | dict[str, Any], *, check_import: bool = False) -> dict[str, Any]:
    """Return the normalised action dict, or raise :class:`ActionError`.

    * a string is a shell command: ``{"kind": "command", "command": text}``;
    * ``{"kind": "command", "command": str}`` needs a non-empty command without NUL;
    * ``{"kind": "python", "target": "pkg.mod:func"}`` needs a target of that
      form (nested attributes allowed: ``pkg.mod:obj.method``); with
      ``check_import=True`` the target is also imported and must be callable;
    * any other ``kind`` must name a known runner (see :func:`get_runner`).

    The input is never mutated; extra keys of a dict action are kept.
    """
    # Typed callers pass str | dict, but actions come from JSON files and CLIs.
    raw: object = action
    if isinstance(raw, str):
        raw = {"kind": "command", "command": raw}
    if not isinstance(raw, dict):
        raise ActionError(
            raw, "expected a command string or a dict with a 'kind' (command, python, ...)"
        )
    action = raw
    kind = action.get("kind")
    if not isinstance(kind, str) or not kind:
        raise ActionError(action, f"missing or invalid 'kind'; known: {', '.join(_known_kinds())}")
    out = dict(action)
    if kind == "command":
        command = action.get("command")
        if not isinstance(command, str):
            raise ActionError(action, f"'command' must be a string, got {command!r}")
        if not command.strip():
            raise ActionError(action, "'command' is empty")
        if "\x00" in command:
            raise ActionError(action, "'command' contains a NUL byte")
    elif kind == "python":
        target = action.get("target")
        if not isinstance(target, str) or not _TARGET_RE.match(target):
            raise ActionError(
                action, f"python target must look like 'pkg.mod:func', got {target!r}"
            )
        if check_import:
            try:
                _resolve_target(target)
            except Exception as exc:
                raise ActionError(
                    action, f"cannot import target {target!r}: {type(exc).__name__}: {exc}"
                ) from exc
    else:
        get_runner(kind)
    return out


_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_ENV = ("CRONKIT_JOB_ID", "CRONKIT_SCHEDULED_AT")
"""Set by cronkit on every command run; a job cannot override them."""


def validate_cwd(value: object) -> str | None:
    """A job's ``cwd``: an absolute path to a directory that exists now; None/'' = unset.

    Returns the normalised path. Raises :class:`JobValueError` naming ``cwd``.
    Existence is checked when the value is set; a directory that vanishes
    later fails that run (see :func:`run_command`), it does not break the job.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise JobValueError("cwd", value, "expected an absolute directory path")
    if not os.path.isabs(value):
        raise JobValueError("cwd", value, "expected an absolute directory path, e.g. '/srv/app'")
    path = os.path.normpath(value)
    if not os.path.isdir(path):
        raise JobValueError("cwd", value, "no such directory")
    return path


def validate_env(value: object) -> dict[str, str] | None:
    """A job's ``env``: names (``[A-Za-z_][A-Za-z0-9_]*``) to string values; None/{} = unset.

    Raises :class:`JobValueError` naming ``env`` and the offending key or value.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise JobValueError("env", value, "expected a map of NAME to string value")
    out: dict[str, str] = {}
    for key, val in value.items():
        if not isinstance(key, str) or not _ENV_NAME_RE.match(key):
            raise JobValueError(
                "env",
                key,
                "not a valid environment variable name (letters, digits, _; "
                "not starting with a digit)",
            )
        if key in RESERVED_ENV:
            raise JobValueError("env", key, "set by cronkit on every run; it cannot be overridden")
        if not isinstance(val, str) or "\x00" in val:
            raise JobValueError(f"env {key}", val, "expected a string without NUL bytes")
        out[key] = val
    return out or None


def run_action(job: dict[str, Any], ctx: RunContext) -> RunResult:
    """Run ``job["action"]`` through its runner and return the result.

    Never raises an ``Exception``: an invalid action, an unknown kind or a
    runner that raises or returns something other than a :class:`RunResult`
    becomes a ``status="error"`` result, so the caller always has an outcome to
    record. ``BaseException`` propagates.
    """
    try:
        action = validate_action(job.get("action"))  # type: ignore[arg-type]
        runner = get_runner(action["kind"])
        # Third-party runners are not type-checked against our contract.
        result: object = runner({**job, "action": action}, ctx)
    except ActionError as exc:
        log.warning("job %s: %s", job.get("id"), exc)
        return RunResult(status="error", output="", error=str(exc))
    except Exception as exc:
        log.warning("job %s: runner raised %s: %s", job.get("id"), type(exc).__name__, exc)
        return RunResult(
            status="error", output=cap_text(traceback.format_exc()), error=one_line(exc)
        )
    if not isinstance(result, RunResult):
        return RunResult(
            status="error",
            output="",
            error=f"runner for kind {action['kind']!r} returned {type(result).__name__}, "
            "expected RunResult",
        )
    return result


_BUILTINS: dict[str, Runner] = {"command": run_command, "python": run_python}

__all__ = [
    "DRAIN_GRACE",
    "ENTRY_POINT_GROUP",
    "GATE_CANCELLED",
    "MAX_OUTPUT_BYTES",
    "RESERVED_ENV",
    "TERM_GRACE",
    "OutputSink",
    "RunContext",
    "RunResult",
    "Runner",
    "SpawnHook",
    "Straggler",
    "_Pipe",
    "get_runner",
    "register_runner",
    "run_action",
    "run_command",
    "run_python",
    "target_import_problem",
    "unregister_runner",
    "validate_action",
    "validate_cwd",
    "validate_env",
]
