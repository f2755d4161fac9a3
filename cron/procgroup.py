"""A job's process group, named so that a reused pid is never signalled.

A ``command`` run is ``/bin/sh -c`` started in a new session, so its pid is
its process group id and its session id. A pgid alone is not an identity: once
the whole group is gone the kernel may hand that number to an unrelated
process. Recorded with the leader's start time (``/proc/<pid>/stat`` field 22,
clock ticks since boot) it is:

- the leader still exists → the group is ours only if its start time matches;
- the leader is gone but members remain → Linux does not reuse a pid while a
  process group of that id exists, so the number was not recycled; members are
  still checked to have started no earlier than the leader (every member of a
  session is forked after the ``setsid`` that made it).

Zombies are never counted: they cannot run again, and a reparented grandchild's
zombie lingers as long as its new parent (a container's pid 1 that never reaps)
does not wait for it.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from cron.procinfo import process_start_time

TERM_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL when a group is ended."""


def _stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, pgrp, starttime)`` of ``pid`` from ``/proc``, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name may hold spaces and parentheses; the fields after the last ')' are fixed.
    rest = raw.rsplit(")", 1)[-1].split()
    try:
        return rest[0], int(rest[2]), int(rest[19])
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class ProcessGroup:
    """A process group id plus the start time of the leader it was recorded with."""

    pgid: int
    leader_start: str | None

    @classmethod
    def of_leader(cls, pid: int) -> ProcessGroup:
        """The group led by ``pid`` (called right after starting it)."""
        return cls(pid, process_start_time(pid))

    def _start(self) -> int | None:
        try:
            return int(self.leader_start) if self.leader_start is not None else None
        except ValueError:
            return None

    def members(self) -> list[int]:
        """Live (non-zombie) pids of this very group; empty once it is gone or was reused."""
        if self.pgid <= 1:
            return []
        start = self._start()
        leader = _stat(self.pgid)
        if leader is not None and start is not None and leader[2] != start:
            return []  # the pid now names another process: our group ended long ago
        try:
            entries = os.listdir("/proc")
        except OSError:
            return []
        found: list[int] = []
        for entry in entries:
            if not entry.isdigit():
                continue
            info = _stat(int(entry))
            if info is None:
                continue
            state, pgrp, started = info
            if pgrp != self.pgid or state in ("Z", "X"):
                continue
            if start is not None and started < start:
                continue
            found.append(int(entry))
        return found

    def alive(self) -> bool:
        return bool(self.members())

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to the group if it is still this group; True if it was sent."""
        if not self.alive():
            return False
        try:
            os.killpg(self.pgid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def wait_gone(self, timeout: float, *, poll: float = 0.05) -> bool:
        """Wait up to ``timeout`` seconds for the group to be gone; True if it is."""
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    def terminate(self, grace: float = TERM_GRACE) -> bool:
        """SIGTERM, up to ``grace`` seconds to exit, then SIGKILL; True once the group is gone."""
        if not self.signal(signal.SIGTERM):
            return not self.alive()
        if self.wait_gone(grace):
            return True
        self.signal(signal.SIGKILL)
        return self.wait_gone(2.0)
