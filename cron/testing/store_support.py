"""What the store contract's tests build on: a job factory and racing helpers.

:func:`make_job` makes a job shaped as ``cron.jobs.create_job`` makes one, every
field chosen by the test; ``_run_threads`` and ``_race_in_process`` release N
threads or ``spawn`` processes together. Importable from :mod:`cron.testing.store`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from cron.claim import Job
from cron.stores import open_store

THREADS = 8
PROCESSES = 4
JOIN_TIMEOUT = 60.0

# A fixed instant well in the future of any real clock skew: store-level tests
# never consult the clock, only wake times relative to this.
T0 = datetime(2031, 1, 6, 12, 0, tzinfo=UTC)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def _new_id() -> str:
    return uuid.uuid4().hex[:12]


def make_job(
    job_id: str | None = None,
    *,
    next_run_at: datetime | None = T0,
    name: str = "contract job",
    enabled: bool = True,
    state: str = "scheduled",
    key: str | None = None,
    claim_at: datetime | None = None,
    times: int | None = None,
    completed: int = 0,
) -> Job:
    """A job shaped as ``cron.jobs.create_job`` makes one (SPEC §3), every field chosen here."""
    job: Job = {
        "id": job_id or _new_id(),
        "name": name,
        "schedule": {"kind": "interval", "seconds": 3600, "display": "every 1h"},
        "action": {"kind": "command", "command": "true"},
        "repeat": {"times": times, "completed": completed},
        "enabled": enabled,
        "state": state,
        "paused_at": None if enabled else _iso(T0),
        "paused_reason": None,
        "created_at": _iso(T0 - timedelta(days=1)),
        "next_run_at": _iso(next_run_at) if next_run_at is not None else None,
        "last_run_at": None,
        "last_scheduled_at": None,
        "last_status": None,
        "last_error": None,
        "failure_streak": 0,
        "fire_claim": None,
    }
    if claim_at is not None:
        job["fire_claim"] = {
            "token": uuid.uuid4().hex,
            "at": _iso(claim_at),
            "by": "contract:1:1",
            "scheduled_at": _iso(claim_at),
        }
    if key is not None:
        job["key"] = key
    return job


def _renamed(job: Job, name: str) -> Job:
    out = dict(job)
    out["name"] = name
    return out


def _race_in_process(url: str, job_id: str, name: str, barrier: Any, results: Any) -> None:
    """One racer in a fresh process: open the store by URL, read, wait, swap, report."""
    store = open_store(url)
    try:
        stored = store.get(job_id)
        assert stored is not None, f"{url}: job {job_id} not visible from another process"
        barrier.wait(JOIN_TIMEOUT)
        won = store.swap(job_id, stored.rev, _renamed(stored.job, name))
        results.put((name, won is not None))
    except BaseException as exc:
        barrier.abort()  # the other racers must not wait out the timeout for this one
        results.put((name, f"error: {exc!r}"))
        raise
    finally:
        store.close()


def _run_threads(n: int, body: Callable[[int], object]) -> list[object]:
    """Run ``body(i)`` in ``n`` threads released together by a barrier; results by index."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(JOIN_TIMEOUT)
            results[i] = body(i)
        except BaseException as exc:  # reported by the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a racing thread hung"
    assert not errors, errors[0]
    return results


__all__ = ["JOIN_TIMEOUT", "PROCESSES", "T0", "THREADS", "make_job"]
