"""A ``python`` action for the retry property: fails as a script says, records every attempt.

Referenced as ``tests.retries._target:attempt``. State is module-level because the
action runs in this process's worker threads; :func:`reset` starts a new example.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cron import jobs, scheduler
from cron.claim import parse_ts

TARGET = "tests.retries._target:attempt"


@dataclass(frozen=True)
class Attempt:
    slot: str
    attempt: int
    started: datetime
    """The retry clock's time at the start."""
    next_slot: datetime | None
    """The job's next slot as stored when the attempt started."""
    failed: bool


_lock = threading.Lock()
_script: list[bool] = []
records: list[Attempt] = []
running = 0
most_running = 0


def reset(script: list[bool]) -> None:
    global running, most_running
    with _lock:
        _script[:] = script
        records.clear()
        running = most_running = 0


def attempt(job: dict[str, Any]) -> str:
    global running, most_running
    with _lock:
        running += 1
        most_running = max(most_running, running)
        fail = _script.pop(0) if _script else False
    try:
        claim = job["fire_claim"]
        current = jobs.get_job(job["id"]) or {}
        records.append(
            Attempt(
                claim["scheduled_at"],
                int(claim.get("attempt") or 1),
                scheduler.retry_timing().clock.now(),
                parse_ts(current.get("next_run_at")),
                fail,
            )
        )
        if fail:
            raise RuntimeError("scripted failure")
        return "ok"
    finally:
        with _lock:
            running -= 1
