"""No-op job actions used by the benchmarks, so only scheduling is measured.

``record`` is a cronkit ``python`` action (``bench.actions:record``): it is
called with the job dict, whose ``fire_claim.scheduled_at`` is the slot the
claim fired, and appends ``(actual start, scheduled slot)`` as epoch floats to
``SAMPLES``. The first statement reads the clock, so the sample covers
everything cronkit does between the slot and calling the action.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

SAMPLES: list[tuple[float, float, str]] = []
_lock = threading.Lock()


def record(job: dict[str, Any]) -> None:
    started = time.time()
    slot = datetime.fromisoformat(job["fire_claim"]["scheduled_at"]).timestamp()
    with _lock:
        SAMPLES.append((started, slot, str(job.get("id"))))


def noop(job: dict[str, Any]) -> None:
    return None


def reset() -> None:
    with _lock:
        SAMPLES.clear()
