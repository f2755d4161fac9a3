"""Count a job's live process groups from ``/proc`` — independently of cronkit's ledger.

Every process a ``command`` run starts carries ``CRONKIT_JOB_ID=<id>`` in its
environment; the live (non-zombie) ones are grouped by process group. Two
groups of one job alive at once would be two runs of it overlapping.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterable


def _state_and_pgrp(pid: int) -> tuple[str, int] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            rest = fh.read().decode("ascii", "replace").rsplit(")", 1)[-1].split()
        return rest[0], int(rest[2])
    except (OSError, IndexError, ValueError):
        return None


def job_groups(job_ids: Iterable[str]) -> dict[str, set[int]]:
    """``{job_id: {pgid, ...}}`` of live processes whose environment names that job."""
    wanted = {f"CRONKIT_JOB_ID={j}".encode(): j for j in job_ids}
    found: dict[str, set[int]] = {j: set() for j in wanted.values()}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        info = _state_and_pgrp(pid)
        if info is None or info[0] in ("Z", "X"):
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        for var in env:
            job = wanted.get(var)
            if job is not None:
                found[job].add(info[1])
    return found


class GroupSampler:
    """Samples :func:`job_groups` every ``every`` seconds in a thread; keeps the worst moments."""

    def __init__(self, job_ids: Iterable[str], every: float = 0.1) -> None:
        self.job_ids = list(job_ids)
        self.every = every
        self.samples = 0
        self.max_groups: dict[str, int] = {j: 0 for j in self.job_ids}
        self.overlaps: list[tuple[float, str, set[int]]] = []
        self.seen: dict[str, set[int]] = {j: set() for j in self.job_ids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for job, groups in job_groups(self.job_ids).items():
                self.max_groups[job] = max(self.max_groups[job], len(groups))
                self.seen[job] |= groups
                if len(groups) > 1:
                    self.overlaps.append((now, job, groups))
            self.samples += 1
            self._stop.wait(self.every)

    def __enter__(self) -> GroupSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def kill_groups(groups: Iterable[int]) -> None:
    """Test clean-up: SIGKILL whatever is left (never relied on by an assertion)."""
    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
