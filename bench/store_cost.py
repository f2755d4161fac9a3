"""Store costs: the idle tick, single and batch claims, and 4 contending processes.

Each measurement runs in a fresh interpreter against a fresh CRONKIT_HOME
under ``bench/.work/``::

    python -m bench.store_cost idle --jobs 10000
    python -m bench.store_cost claim --jobs 1000
    python -m bench.store_cost contend --jobs 1000 --procs 4 [--mode tick]

* ``idle`` - N jobs, none due (first slots 1 day away). After one warm-up
  tick (which parses the file once), times ``cron.scheduler.tick(sync=False)``
  and the ticker's whole idle iteration (tick + heartbeat files,
  ``InProcessCronScheduler.run_iteration``) plus ``next_delay``. Counts how
  many times ``jobs.json`` was parsed during the timed ticks (target: 0).
* ``claim`` - N jobs with cron schedules. Single: ``claim_job_for_fire`` on
  one due job (it advances, so each sample claims a different job). Batch:
  ``claim_due_jobs`` with exactly 100 due jobs (the store is reset between
  samples). Both include the ledger rows the API writes; the time spent in
  ``cron.executions`` is reported separately.
* ``contend`` - N due jobs (each due exactly once: daily interval), P
  processes started together each trying ``claim_job_for_fire`` on every job
  in the same shuffled order (``--mode single``, the worst case: every slot
  raced by all), or each running the tick's batch claim (``claim_due_jobs``)
  until nothing is due (``--mode tick``: what the nodes of a cluster do when
  many jobs fall due at once). Reports total successful claims/s and asserts
  that no job was won twice.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import (
    ACTION_NOOP,
    build_jobs,
    child_env,
    emit,
    summarize,
    temp_home,
    use_home,
)

DAY = 86400.0
# Cron schedules so next-slot computation goes through the (cached) cron parser.
CRON_EXPRS = ("*/5 * * * *", "0 * * * *", "15 3 * * *", "30 9 * * 1-5")


def _mixed_specs(n: int, next_run: float) -> list[tuple[str, float]]:
    return [(CRON_EXPRS[i % len(CRON_EXPRS)], next_run) for i in range(n)]


def _ms(fn: Any, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


# -- idle tick -------------------------------------------------------------------------


def idle(n: int, reps: int) -> dict[str, Any]:
    from cron import scheduler
    from cron.scheduler_provider import InProcessCronScheduler
    from cron.store import JsonJobStore, get_store

    with temp_home("idle") as home:
        use_home(home)
        t_build = time.perf_counter()
        build_jobs(_mixed_specs(n, time.time() + DAY), ACTION_NOOP)
        build_s = time.perf_counter() - t_build
        store = get_store()
        size = store.path.stat().st_size if isinstance(store, JsonJobStore) else None

        parses = Counter[str]()
        if isinstance(store, JsonJobStore):
            original_parse = store._parse

            def counting_parse(data: bytes) -> Any:
                parses["parse"] += 1
                return original_parse(data)

            store._parse = counting_parse  # type: ignore[method-assign]

        t0 = time.perf_counter()
        scheduler.tick(sync=False)  # warm-up: parses once
        first_ms = (time.perf_counter() - t0) * 1000.0
        parses.clear()
        tick_ms = _ms(lambda: scheduler.tick(sync=False), reps)
        tick_parses = parses["parse"]
        ticker = InProcessCronScheduler()
        iter_ms = _ms(ticker.run_iteration, max(20, reps // 5))
        delay_ms = _ms(lambda: ticker.next_delay(60), reps)
        version_ms = _ms(store.version, reps)
        stat_ms = _ms(lambda: os.stat(store.path), reps) if isinstance(store, JsonJobStore) else []
        total_parses = parses["parse"]
    return {
        "jobs": n,
        "store_bytes": size,
        "build_s": round(build_s, 3),
        "first_tick_ms": first_ms,
        "tick_ms": summarize(tick_ms),
        "iteration_ms": summarize(iter_ms),
        "next_delay_ms": summarize(delay_ms),
        "version_ms": summarize(version_ms),
        "stat_ms": summarize(stat_ms),
        "parses_during_idle_ticks": tick_parses,
        "parses_during_all_idle_calls": total_parses,
    }


# -- claims ------------------------------------------------------------------------------


class _LedgerTimer:
    """Accumulates wall time spent inside ``cron.executions`` writes."""

    def __init__(self) -> None:
        from cron import executions

        self.total = 0.0
        # On json the rows a claim carries are written by executions.insert_rows after
        # the store write; on sqlite they share the claim's transaction (not separable).
        for name in ("record_claim", "record_claims", "record_event", "insert_rows"):
            original = getattr(executions, name)
            setattr(executions, name, self._wrap(original))

    def _wrap(self, fn: Any) -> Any:
        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.total += time.perf_counter() - t0

        return timed

    def take(self) -> float:
        out, self.total = self.total * 1000.0, 0.0
        return out


def claim(n: int, singles: int, batches: int, batch_size: int) -> dict[str, Any]:
    from cron import jobs
    from cron.cronexpr import _compile
    from cron.store import get_store

    with temp_home("claim") as home:
        use_home(home)
        now = time.time()
        due_single = min(singles, n)
        specs = _mixed_specs(n, now + DAY)
        for i in range(due_single):
            specs[i] = (specs[i][0], now - 1.0)
        ids = build_jobs(specs, ACTION_NOOP)
        store = get_store()
        store.scan()  # warm the reader cache like a running gateway would have
        timer = _LedgerTimer()
        # Warm-up like a running gateway: imports, the ledger schema, the store's
        # statements, and each schedule's compiled expression (a ticker has computed
        # every job's next slot before any claim); one claim per expression.
        warm = len(CRON_EXPRS)
        for job_id in ids[:warm]:
            jobs.claim_job_for_fire(job_id)
        timer.take()
        single, single_ledger = [], []
        for job_id in ids[warm:due_single]:
            t0 = time.perf_counter()
            token = jobs.claim_job_for_fire(job_id)
            single.append((time.perf_counter() - t0) * 1000.0)
            single_ledger.append(timer.take())
            if token is None:
                raise SystemExit(f"single claim of {job_id} lost unexpectedly")
        batch, batch_ledger, won_counts = [], [], []
        k = min(batch_size, n)
        for _ in range(batches):
            now = time.time()
            specs = _mixed_specs(n, now + DAY)
            for i in range(k):
                specs[i] = (specs[i][0], now - 1.0)
            build_jobs(specs, ACTION_NOOP)
            # Warm like a running ticker: its idle wakes keep the parsed jobs and the
            # due index current (build_jobs rewrote the file, as another process would).
            store.scan()
            store.next_wake()
            timer.take()
            t0 = time.perf_counter()
            won = jobs.claim_due_jobs()
            batch.append((time.perf_counter() - t0) * 1000.0)
            batch_ledger.append(timer.take())
            won_counts.append(len(won))
        cache = _compile.cache_info()
    s_med = statistics.median(single)
    b_med = statistics.median(batch)
    return {
        "jobs": n,
        "single_ms": summarize(single),
        "single_ledger_ms": summarize(single_ledger),
        "single_store_ms_median": statistics.median(
            [a - b for a, b in zip(single, single_ledger, strict=True)]
        ),
        "batch_size": k,
        "batch_won": won_counts,
        "batch_ms": summarize(batch),
        "batch_ledger_ms": summarize(batch_ledger),
        "batch_store_ms_median": statistics.median(
            [a - b for a, b in zip(batch, batch_ledger, strict=True)]
        ),
        "batch_over_single": b_med / s_med if s_med else None,
        "cron_compile_cache": {"hits": cache.hits, "misses": cache.misses},
    }


# -- contention ------------------------------------------------------------------------------


def contend_worker(out: Path, start_at: float, seed: int) -> None:
    from cron import jobs

    ids = json.loads((out.parent / "ids.json").read_text())
    random.Random(seed).shuffle(ids)
    while time.time() < start_at:
        time.sleep(0.001)
    t0 = time.time()
    won: list[tuple[str, str]] = []
    attempts = 0
    for job_id in ids:  # bounded: one attempt per job
        attempts += 1
        token = jobs.claim_job_for_fire(job_id, source="bench")
        if token is not None:
            won.append((job_id, token))
    out.write_text(json.dumps({"won": won, "attempts": attempts, "t0": t0, "t1": time.time()}))


def contend_tick_worker(out: Path, start_at: float) -> None:
    """The tick's batch claim (``claim_due_jobs``) in a loop until nothing is due:
    what a node of a cluster does when many jobs fall due at once."""
    from cron import job_claims
    from cron.store import get_store

    store = get_store()
    while time.time() < start_at:
        time.sleep(0.001)
    t0 = time.time()
    won: list[tuple[str, str]] = []
    attempts = 0
    while True:
        attempts += 1
        got = job_claims.claim_due_jobs(source="bench")
        won.extend((job["id"], token) for job, token in got)
        if not got and not store.scan(due_by=store.clock(), limit=1):
            break
    out.write_text(json.dumps({"won": won, "attempts": attempts, "t0": t0, "t1": time.time()}))


def contend(n: int, procs: int, mode: str = "single") -> dict[str, Any]:
    with temp_home("contend") as home:
        use_home(home)
        ids = build_jobs([("every 1d", time.time() - 1.0)] * n, ACTION_NOOP)
        (home / "ids.json").write_text(json.dumps(ids))
        start_at = time.time() + 2.0 + 0.3 * procs
        children = []
        for p in range(procs):
            out = home / f"worker-{p}.json"
            cmd = [
                sys.executable,
                "-m",
                "bench.store_cost",
                "contend-worker" if mode == "single" else "contend-tick-worker",
                "--out",
                str(out),
                "--start-at",
                repr(start_at),
            ]
            if mode == "single":
                cmd += ["--seed", "7"]
            children.append((out, subprocess.Popen(cmd, env=child_env(home))))
        for _, child in children:
            child.wait(timeout=600)
        results = [json.loads(out.read_text()) for out, _ in children]
        from cron import jobs

        final = {j["id"]: j for j in jobs.list_jobs()}
    t0 = min(r["t0"] for r in results)
    t1 = max(r["t1"] for r in results)
    wins = Counter(job_id for r in results for job_id, _ in r["won"])
    double = sum(1 for c in wins.values() if c > 1)
    total_wins = sum(wins.values())
    attempts = sum(r["attempts"] for r in results)
    completed = sum(1 for j in final.values() if j["repeat"]["completed"] == 1)
    if double:
        raise SystemExit(f"DOUBLE CLAIMS: {double} job(s) won by more than one process")
    return {
        "mode": mode,
        "jobs": n,
        "procs": procs,
        "wall_s": t1 - t0,
        "claims_won": total_wins,
        "attempts": attempts,
        "claims_per_s": total_wins / (t1 - t0),
        "attempts_per_s": attempts / (t1 - t0),
        "double_claims": double,
        "unclaimed": n - len(wins),
        "store_completed_once": completed,
        "per_process_wins": [len(r["won"]) for r in results],
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("idle")
    p.add_argument("--jobs", type=int, required=True)
    p.add_argument("--reps", type=int, default=200)
    p = sub.add_parser("claim")
    p.add_argument("--jobs", type=int, required=True)
    p.add_argument("--singles", type=int, default=200)
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=100)
    p = sub.add_parser("contend")
    p.add_argument("--jobs", type=int, required=True)
    p.add_argument("--procs", type=int, default=4)
    p.add_argument("--mode", choices=("single", "tick"), default="single")
    p = sub.add_parser("contend-worker")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--start-at", type=float, required=True)
    p.add_argument("--seed", type=int, default=7)
    p = sub.add_parser("contend-tick-worker")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--start-at", type=float, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "idle":
        emit(idle(args.jobs, args.reps))
    elif args.cmd == "claim":
        emit(claim(args.jobs, args.singles, args.batches, args.batch_size))
    elif args.cmd == "contend":
        emit(contend(args.jobs, args.procs, args.mode))
    elif args.cmd == "contend-tick-worker":
        contend_tick_worker(args.out, args.start_at)
    else:
        contend_worker(args.out, args.start_at, args.seed)


if __name__ == "__main__":
    main()
