"""Firing lateness: (actual start - scheduled slot) for cronkit and APScheduler 3.

One scenario and one implementation per interpreter (``run.py`` starts a
fresh child for each repetition, so neither library inherits the other's
threads, caches or garbage)::

    python -m bench.lateness --impl cronkit --scenario a --duration 60

Scenarios (slots are whole seconds, identical for both implementations):

* ``a`` - one job every second for ``duration`` seconds (interval 1 s).
* ``b`` - ``jobs`` recurring jobs (hourly interval), first slots spread evenly
  over ``duration`` seconds.
* ``c`` - ``jobs`` recurring jobs (hourly interval) all due at the same second.

cronkit: the built-in ticker via ``cron.start_in_background()`` with the
default config (``interval: 60``, ``max_parallel_jobs: 4``); the action is
``bench.actions:record`` (a no-op that reads the clock first). APScheduler:
``BackgroundScheduler`` with its default ``ThreadPoolExecutor`` (10 workers),
``IntervalTrigger`` s with the same start dates, ``misfire_grace_time=60`` so
a late run is measured rather than dropped; the job function reads the clock
first and takes its scheduled time from the executor (see ``_patch_apscheduler``).
"""

from __future__ import annotations

import argparse
import math
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from bench.common import ACTION_RECORD, build_jobs, emit, summarize, temp_home, use_home

SETTLE = 3.0  # seconds between starting the scheduler and the first slot
DRAIN = 10.0  # how long past the last slot we wait for stragglers


def plan(scenario: str, duration: float, jobs: int) -> tuple[list[float], float, str]:
    """``(first slots, scenario start, schedule text)``; ``a`` is one job, many slots."""
    start = math.ceil(time.time() + SETTLE)
    if scenario == "a":
        return [float(start)], float(start), "every 1s"
    if scenario == "b":
        step = duration / jobs
        return [start + i * step for i in range(jobs)], float(start), "every 1h"
    if scenario == "c":
        return [float(start)] * jobs, float(start), "every 1h"
    raise SystemExit(f"unknown scenario {scenario!r}")


def expected_samples(scenario: str, duration: float, jobs: int) -> int:
    return int(duration) if scenario == "a" else jobs


def _collect(
    samples: list[tuple[float, float, str]],
    start: float,
    scenario: str,
    duration: float,
    expected: int,
) -> list[tuple[float, float, str]]:
    """Samples whose slot lies inside the measured window (scenario a keeps running)."""
    end = start + (duration if scenario == "a" else duration + 1)
    kept = [s for s in samples if start - 1e-6 <= s[1] < end - 1e-6]
    return kept[: max(expected, len(kept))]


def _wait(samples: list[Any], expected: int, deadline: float) -> None:
    while len(samples) < expected and time.time() < deadline:
        time.sleep(0.05)


def run_cronkit(scenario: str, duration: float, jobs: int) -> dict[str, Any]:
    import cron
    from bench import actions

    with temp_home("lateness") as home:
        use_home(home)
        slots, start, sched = plan(scenario, duration, jobs)
        build_jobs([(sched, t) for t in slots], ACTION_RECORD)
        expected = expected_samples(scenario, duration, jobs)
        actions.reset()
        handle = cron.start_in_background()
        try:
            last_slot = start + (duration - 1 if scenario == "a" else max(slots) - start)
            _wait(actions.SAMPLES, expected, last_slot + DRAIN)
            if scenario == "a":
                # The job keeps firing; only the window's slots are counted.
                time.sleep(max(0.0, start + duration + 0.2 - time.time()))
        finally:
            handle.stop(timeout=10, wait_for_jobs=10)
        samples = list(actions.SAMPLES)
    return _result("cronkit", scenario, duration, jobs, samples, start, expected)


_tl = threading.local()


def _patch_apscheduler() -> None:
    """Hand each job call its scheduled time through a thread-local.

    APScheduler 3 does not pass ``scheduled_run_time`` to the job function;
    its pool executors call ``apscheduler.executors.base.run_job(job, alias,
    run_times, ...)`` in the worker thread, which calls ``job.func()`` once per
    run time. The wrapper stores the run times, the function pops one.
    """
    import apscheduler.executors.pool as pool_mod

    original = pool_mod.run_job

    def timed_run_job(job: Any, alias: str, run_times: list[datetime], logger: str) -> Any:
        _tl.run_times = list(run_times)
        return original(job, alias, run_times, logger)

    pool_mod.run_job = timed_run_job


def run_apscheduler(scenario: str, duration: float, jobs: int) -> dict[str, Any]:
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    _patch_apscheduler()
    samples: list[tuple[float, float, str]] = []

    def make(job_id: str) -> Any:
        def fn() -> None:
            started = time.time()
            slot = _tl.run_times.pop(0).timestamp()
            samples.append((started, slot, job_id))

        return fn

    sched = BackgroundScheduler(
        timezone=UTC, job_defaults={"misfire_grace_time": 60, "coalesce": False}
    )
    slots, start, _ = plan(scenario, duration, jobs)
    period = {"seconds": 1} if scenario == "a" else {"hours": 1}
    for i, t in enumerate(slots):
        trig = IntervalTrigger(**period, start_date=datetime.fromtimestamp(t, UTC), timezone=UTC)
        sched.add_job(make(str(i)), trig, id=str(i), max_instances=10)
    expected = expected_samples(scenario, duration, jobs)
    sched.start()
    try:
        last_slot = start + (duration - 1 if scenario == "a" else max(slots) - start)
        _wait(samples, expected, last_slot + DRAIN)
        if scenario == "a":
            time.sleep(max(0.0, start + duration + 0.2 - time.time()))
    finally:
        sched.shutdown(wait=True)
    return _result("apscheduler", scenario, duration, jobs, list(samples), start, expected)


def _result(
    impl: str,
    scenario: str,
    duration: float,
    jobs: int,
    samples: list[tuple[float, float, str]],
    start: float,
    expected: int,
) -> dict[str, Any]:
    window = _collect(samples, start, scenario, duration, expected)
    lateness_ms = [(s - slot) * 1000.0 for s, slot, _ in window]
    dupes = sum(
        n - 1 for n in Counter((j, round(slot, 3)) for _, slot, j in window).values() if n > 1
    )
    summary = summarize(lateness_ms)
    return {
        "impl": impl,
        "scenario": scenario,
        "duration_s": duration,
        "jobs": 1 if scenario == "a" else jobs,
        "expected": expected,
        "fired": len(window),
        "missing": max(0, expected - len(window)),
        "duplicates": dupes,
        "lateness_ms": summary,
        "within_100ms": sum(1 for x in lateness_ms if x <= 100.0),
        "early": sum(1 for x in lateness_ms if x < 0),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--impl", choices=("cronkit", "apscheduler"), required=True)
    ap.add_argument("--scenario", choices=("a", "b", "c"), required=True)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--jobs", type=int, default=1000)
    args = ap.parse_args(argv)
    runner = run_cronkit if args.impl == "cronkit" else run_apscheduler
    emit(runner(args.scenario, args.duration, args.jobs))


if __name__ == "__main__":
    main()
