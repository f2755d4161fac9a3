"""The built-in ``command`` runner: ``/bin/sh -c`` in a process group of its own (SPEC §6)."""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import subprocess
import time
from typing import Any

from cron import paths
from cron.procgroup import ProcessGroup
from cron.run_types import DRAIN_GRACE, TERM_GRACE, OutputSink, RunContext, RunResult, Tail

log = logging.getLogger(__name__)

# Holds the command until its group is recorded: the parent writes a newline to
# the shell's stdin once ``on_spawn`` is done; if the parent dies first, stdin
# reaches EOF and the command never starts. The command itself then runs
# exactly as ``/bin/sh -c COMMAND`` with stdin /dev/null, in the same process
# (exec), so its pid, process group and start time are the ones recorded.
_GATE_SCRIPT = 'IFS= read -r _ || exit 125; exec /bin/sh -c "$1" </dev/null'
GATE_CANCELLED = 125


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
        self.tail = Tail()
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
    environment is ours, then the job's ``env`` over it, then ``CRONKIT_HOME``
    (the run's home, unless the job's ``env`` sets it), ``CRONKIT_JOB_ID``,
    ``CRONKIT_SCHEDULED_AT`` and ``ctx.env``.

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
    # The home the run belongs to, even when its runtime is bound to another one than
    # $CRONKIT_HOME (cron.runtime): a job that calls `cronkit` acts on its own home.
    if not (isinstance(job_env, dict) and "CRONKIT_HOME" in job_env):
        env["CRONKIT_HOME"] = str(paths.home())
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
            status="interrupted",
            output="",
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


__all__ = ["GATE_CANCELLED", "run_command"]
