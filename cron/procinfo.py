"""Process identity that survives pid reuse: ``host:pid:start``.

A bare pid is not proof of life: after a crash the kernel may hand the same
pid to an unrelated process. Pairing it with the process start time (from
``/proc/<pid>/stat``) makes "this owner is gone" provable.
"""

from __future__ import annotations

import functools
import os
import socket


def process_start_time(pid: int) -> str | None:
    """Kernel start time of ``pid`` in clock ticks since boot, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; fields
    # after the last ')' are fixed. starttime is field 22 overall.
    rest = raw.rsplit(")", 1)[-1].split()
    try:
        return rest[19]
    except IndexError:
        return None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0) but will never run again.
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().decode("ascii", "replace").rsplit(")", 1)[-1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def hostname() -> str:
    return socket.gethostname()


@functools.cache
def _own_start(pid: int) -> str:
    return process_start_time(pid) or "0"


def owner_id() -> str:
    """``host:pid:start`` of the calling process (recomputed after fork)."""
    pid = os.getpid()
    return f"{hostname()}:{pid}:{_own_start(pid)}"


def split_owner(owner: str) -> tuple[str, int, str] | None:
    parts = owner.rsplit(":", 2)
    if len(parts) != 3:
        return None
    host, pid_s, start = parts
    try:
        return host, int(pid_s), start
    except ValueError:
        return None


def owner_gone(owner: str) -> bool:
    """True only when ``owner`` provably no longer runs.

    Another host's process cannot be checked from here, so it is never
    declared gone; a live pid with a different start time is a reused pid.
    """
    parsed = split_owner(owner)
    if parsed is None:
        return False
    host, pid, start = parsed
    if host != hostname():
        return False
    if not pid_alive(pid):
        return True
    current = process_start_time(pid)
    if current is None:
        return True
    return start != "0" and current != start
