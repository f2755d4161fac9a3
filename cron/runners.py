"""Runners: what "run this job's action" means for each action kind.

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
import importlib
import importlib.metadata
import inspect
import logging
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cron import paths
from cron.errors import ActionError, JobValueError
from cron.procgroup import ProcessGroup

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "cronkit.runners"

MAX_OUTPUT_BYTES = 1024 * 1024
"""Captured output is capped here; the tail is kept (errors usually come last)."""

TERM_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL when a command times out."""

DRAIN_GRACE = 1.0
"""Seconds to keep reading output after the shell exits while a background
process it started still holds the output pipe open."""

RUN_STATUSES = ("ok", "error", "timeout", "interrupted")

# Holds the command until its group is recorded: the parent writes a newline to
# the shell's stdin once ``on_spawn`` is done; if the parent dies first, stdin
# reaches EOF and the command never starts. The command itself then runs
# exactly as ``/bin/sh -c COMMAND`` with stdin /dev/null, in the same process
# (exec), so its pid, process group and start time are the ones recorded.
_GATE_SCRIPT = 'IFS= read -r _ || exit 125; exec /bin/sh -c "$1" </dev/null'
GATE_CANCELLED = 125

_TARGET_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


SpawnHook = Callable[[ProcessGroup], bool]


class OutputSink(Protocol):
    """Where a runner streams a run's output as it is produced (the run's output file).

    ``write`` takes raw bytes and never raises for an ordinary I/O failure (the
    run must not fail because its log could not be written).
    """

    def write(self, data: bytes) -> None: ...


@dataclass(frozen=True)
class RunContext:
    """How to run one fire: ``timeout`` in seconds (None or <= 0: none), the fired slot.

    ``on_spawn(group)``, when given, is called by a runner that starts a process
    group, after the group exists and before the action's own command runs; it
    returns False to cancel the run before the command starts (its caller is
    shutting down). The scheduler records the group on the ledger row there,
    so no command ever runs unrecorded.

    ``output``, when given, receives the action's output as it is produced
    (the scheduler passes the run's output file, so ``cronkit logs -f`` can
    follow it). A runner that writes anything there has streamed its output:
    the returned ``RunResult.output`` is then not written to the file again.
    A runner that ignores it gets its returned output written at the end.
    """

    timeout: float | None
    scheduled_at: str | None
    env: Mapping[str, str] | None = None
    on_spawn: SpawnHook | None = None
    output: OutputSink | None = None


@dataclass(frozen=True)
class Straggler:
    """Work a runner could not stop at its timeout; it still runs in this process.

    ``thread`` is doing it; ``final()`` is the run's result once it has ended.
    The scheduler keeps the job's claim (and the ledger row ``running``) until
    then, so no second run of the job starts beside it.
    """

    thread: threading.Thread
    final: Callable[[], RunResult]

    def alive(self) -> bool:
        return self.thread.is_alive()

    def wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (None: forever); True once the work ended."""
        self.thread.join(timeout)
        return not self.thread.is_alive()


@dataclass(frozen=True)
class RunResult:
    """Outcome of one run. ``status`` is ok|error|timeout|interrupted; ``error`` is one line.

    ``straggler`` is set by a runner that returned at its timeout while the
    work goes on (it cannot be stopped); see :class:`Straggler`.
    """

    status: str
    output: str
    error: str | None
    exit_code: int | None = None
    straggler: Straggler | None = field(default=None, compare=False, repr=False)


Runner = Callable[[dict[str, Any], RunContext], RunResult]

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
        return f"cannot import python target {target!r} here: {_one_line(exc)}"
    finally:
        if added is not None:
            with _sys_path_lock, contextlib.suppress(ValueError):
                sys.path.remove(added)
    return None


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
                "env", key, "not a valid environment variable name (letters, digits, _; "
                "not starting with a digit)"
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
            status="error", output=_cap_text(traceback.format_exc()), error=_one_line(exc)
        )
    if not isinstance(result, RunResult):
        return RunResult(
            status="error",
            output="",
            error=f"runner for kind {action['kind']!r} returned {type(result).__name__}, "
            "expected RunResult",
        )
    return result


# --- output capping ---------------------------------------------------------


class _Tail:
    """Keep the last ``limit`` bytes of a stream without holding all of it."""

    def __init__(self, limit: int = MAX_OUTPUT_BYTES) -> None:
        self.limit = limit
        self.buf = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        self.buf += chunk
        # Trim only when well past the limit so trimming stays amortised O(1).
        if len(self.buf) > 2 * self.limit:
            cut = len(self.buf) - self.limit
            self.dropped += cut
            del self.buf[:cut]

    def text(self) -> str:
        if len(self.buf) > self.limit:
            cut = len(self.buf) - self.limit
            self.dropped += cut
            del self.buf[:cut]
        text = bytes(self.buf).decode("utf-8", "replace")
        if self.dropped:
            text = f"[cronkit: output truncated, first {self.dropped} bytes dropped]\n" + text
        return text


def _cap_text(text: str) -> str:
    tail = _Tail()
    tail.add(text.encode("utf-8", "replace"))
    return tail.text()


# --- command runner ---------------------------------------------------------


def _group_alive(pgid: int) -> bool:
    """True while any non-zombie process is in group ``pgid``.

    Zombies are ignored: they cannot run again, and an orphaned grandchild's
    zombie lingers as long as its new parent (init, or a container's pid 1
    that never reaps) does not wait for it.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().decode("ascii", "replace").rsplit(")", 1)[-1].split()
        except OSError:
            continue
        # After the command name: state, ppid, pgrp, ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def _reap_group(pgid: int) -> None:
    """Reap any of our own children left in group ``pgid``.

    Only matters when this process is a child subreaper (or a container's
    pid 1): orphaned grandchildren are then re-parented to us and would
    otherwise stay zombies.
    """
    while True:
        try:
            pid, _ = os.waitpid(-pgid, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by signal {name}"
    return f"exit status {code}"


class _Pipe:
    """Non-blocking reader over the child's merged stdout/stderr."""

    def __init__(self, proc: subprocess.Popen[bytes], sink: OutputSink | None = None) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.sink = sink
        self.stream = proc.stdout
        self.fd = proc.stdout.fileno()
        self.tail = _Tail()
        self.eof = False
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.fd, selectors.EVENT_READ)

    def pump(self, wait: float) -> bool:
        """Read what is available, waiting at most ``wait`` seconds; True if data came."""
        if self.eof:
            # Nothing left to read: spend the wait on the exit instead, so an
            # exit right after EOF is seen at once rather than after ``wait``.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=max(wait, 0.0))
            return False
        if not self.sel.select(timeout=max(wait, 0.0)):
            return False
        chunk = os.read(self.fd, 65536)
        if chunk:
            self.tail.add(chunk)
            if self.sink is not None:
                self.sink.write(chunk)
            return True
        self.eof = True
        return False

    def close(self) -> None:
        self.sel.close()
        self.stream.close()


def _terminate(proc: subprocess.Popen[bytes], pipe: _Pipe) -> None:
    """SIGTERM the whole group, wait up to ``TERM_GRACE`` for it to go, then SIGKILL it."""
    pgid = proc.pid
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + TERM_GRACE
    while time.monotonic() < deadline:
        pipe.pump(0.05)
        # Reap after the liveness check: a member that died in between is a
        # zombie by then and is collected here rather than left behind.
        if proc.poll() is not None and not _group_alive(pgid):
            _reap_group(pgid)
            return
    _signal_group(pgid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and _group_alive(pgid):
        pipe.pump(0.02)
    _reap_group(pgid)


def _open_gate(proc: subprocess.Popen[bytes], ctx: RunContext) -> bool:
    """Report the new group through ``ctx.on_spawn``, then let the command start.

    Returns False (the command is never started; the shell exits) when
    ``on_spawn`` cancels the run. A failing hook is logged and the command
    runs anyway: a ledger hiccup must not stop a job. A ``BaseException``
    kills the group before it propagates.
    """
    assert proc.stdin is not None and ctx.on_spawn is not None
    go = True
    try:
        try:
            go = ctx.on_spawn(ProcessGroup.of_leader(proc.pid))
        except Exception:
            log.exception("recording the process group of pid %d failed; running anyway", proc.pid)
        if go:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(b"\n")
    except BaseException:
        _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)
        raise
    finally:
        with contextlib.suppress(BrokenPipeError, OSError):
            proc.stdin.close()
    return go


def _cwd_gone(job: dict[str, Any], cwd: str, why: str) -> RunResult:
    return RunResult(
        status="error",
        output="",
        error=f"cannot run in working directory {cwd!r}: {why}; fix the job with "
        f"'cronkit edit {job.get('id')} --cwd DIR'",
    )


def run_command(job: dict[str, Any], ctx: RunContext) -> RunResult:
    """Run ``action["command"]`` with ``/bin/sh -c`` in its own process group.

    stdin is ``/dev/null``; stdout and stderr are captured merged, capped at
    :data:`MAX_OUTPUT_BYTES` (the tail is kept), and streamed to
    ``ctx.output`` as they arrive. The working directory is the job's ``cwd``,
    else the cronkit home; a ``cwd`` that no longer exists fails the run
    (``error`` naming the directory) without starting anything. The
    environment is ours, then the job's ``env`` over it, then
    ``CRONKIT_JOB_ID``, ``CRONKIT_SCHEDULED_AT`` and ``ctx.env``.

    On timeout the whole group gets SIGTERM, then SIGKILL after
    :data:`TERM_GRACE` seconds if anything is still alive; the status is
    ``timeout``. A non-zero exit is ``error`` with ``"exit status N"`` or
    ``"killed by signal SIGx"``. The run ends when the shell exits: a
    background process that keeps the output pipe open is given
    :data:`DRAIN_GRACE` seconds, after which its output is no longer captured
    (it is left running, since the command detached it on purpose). If this
    thread receives a ``BaseException`` while waiting, the group is killed
    before it propagates.

    With ``ctx.on_spawn`` the shell first waits on its stdin for the go-ahead
    (``_GATE_SCRIPT``), so the group is known — recorded — before the command
    runs, and a parent that dies in between leaves nothing running.
    """
    command = job["action"]["command"]
    env = dict(os.environ)
    job_env = job.get("env")
    if isinstance(job_env, dict):
        env.update({str(k): str(v) for k, v in job_env.items()})
    env["CRONKIT_JOB_ID"] = str(job.get("id") or "")
    env["CRONKIT_SCHEDULED_AT"] = ctx.scheduled_at or ""
    if ctx.env:
        env.update(ctx.env)
    job_cwd = job.get("cwd")
    if job_cwd:
        cwd = str(job_cwd)
        if not os.path.isdir(cwd):
            return _cwd_gone(job, cwd, "no such directory")
    else:
        cwd = str(paths.ensure_dir(paths.home()))
    timeout = ctx.timeout if ctx.timeout and ctx.timeout > 0 else None

    gated = ctx.on_spawn is not None
    try:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", _GATE_SCRIPT, "sh", command] if gated else ["/bin/sh", "-c", command],
            stdin=subprocess.PIPE if gated else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
            env=env,
        )
    except OSError as exc:
        # The child could not chdir (removed, not a directory, no permission)
        # or /bin/sh could not start: the run fails, the scheduler goes on.
        if exc.filename == cwd or not os.path.isdir(cwd):
            return _cwd_gone(job, cwd, exc.strerror or str(exc))
        raise
    if gated and not _open_gate(proc, ctx):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
        return RunResult(
            status="interrupted", output="",
            error="cancelled before the command started (the scheduler is stopping)",
        )
    pipe = _Pipe(proc, ctx.output)
    timed_out = False
    detached_output = False
    try:
        deadline = time.monotonic() + timeout if timeout is not None else None
        exited_at: float | None = None
        while True:
            if proc.poll() is not None:
                if pipe.eof:
                    break
                if exited_at is None:
                    exited_at = time.monotonic()
                elif time.monotonic() - exited_at >= DRAIN_GRACE:
                    detached_output = True
                    break
            elif deadline is not None and time.monotonic() >= deadline:
                timed_out = True
                _terminate(proc, pipe)
                break
            wait = 0.2
            if deadline is not None and exited_at is None:
                wait = min(wait, deadline - time.monotonic())
            pipe.pump(wait)
        if not timed_out:
            _reap_group(proc.pid)
        # Collect whatever the group wrote before it died (already in the pipe).
        while not detached_output and pipe.pump(0.0):
            pass
    except BaseException:
        # Interrupted while waiting: no grace, the host is going away.
        _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and _group_alive(proc.pid):
                time.sleep(0.01)
            _reap_group(proc.pid)
        raise
    finally:
        pipe.close()

    output = pipe.tail.text()
    if detached_output:
        note = (
            "\n[cronkit: a background process kept the output open after the command "
            "exited; its later output was not captured]\n"
        )
        output += note
        if ctx.output is not None:
            ctx.output.write(note.encode())
    code = proc.returncode
    if timed_out:
        return RunResult(
            status="timeout",
            output=output,
            error=f"timed out after {timeout:g}s; process group terminated",
            exit_code=code,
        )
    if code != 0:
        return RunResult(status="error", output=output, error=_describe_exit(code), exit_code=code)
    return RunResult(status="ok", output=output, error=None, exit_code=0)


# --- python runner ----------------------------------------------------------


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
    thread and the caller stops waiting after ``ctx.timeout`` seconds,
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
            return RunResult("error", _cap_text(traceback.format_exc()), _one_line(exc))
        return RunResult("ok", _cap_text(_coerce_output(value)), None)

    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:
            box["exc"] = exc
            box["tb"] = traceback.format_exc()

    thread = threading.Thread(target=worker, name=f"cronkit-python-{job.get('id')}", daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(timeout)

    def outcome() -> RunResult:
        failure: BaseException | None = box.get("exc")
        if failure is not None:
            if not isinstance(failure, Exception):
                raise failure
            return RunResult("error", _cap_text(box["tb"]), _one_line(failure))
        return RunResult("ok", _cap_text(_coerce_output(box.get("value"))), None)

    if thread.is_alive():

        def final() -> RunResult:
            took = time.monotonic() - started
            try:
                late = outcome()
            except BaseException as exc:  # noqa: B036 - the work is over; report how it ended
                late = RunResult("error", "", _one_line(exc))
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
            straggler=Straggler(thread, final),
        )
    return outcome()


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) if "\n" in text else text


_BUILTINS: dict[str, Runner] = {"command": run_command, "python": run_python}
