"""Firing lateness across a cluster: N real gateways, separate homes, one PostgreSQL database.

``python -m bench.cluster [--url postgresql://...] [--nodes 3] [--jobs 300] [--duration 60]``

Each job fires once, its first slot spread evenly over ``duration`` seconds; its action
(``bench.cluster:record``, a python action) appends ``started slot job pid`` to a shared
file with ``O_APPEND``, its first statement reading the clock. The result: lateness
(start − slot) p50/p99 over every fire, fires per node, and the number of slots that
ran more than once (must be 0). Gateways run ``--no-webhook``; they are stopped with
SIGTERM at the end. Loopback only.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import ROOT, child_env, emit, summarize, temp_home, use_home

SAMPLES_ENV = "CRONKIT_BENCH_SAMPLES"
SETTLE = 6.0  # seconds between starting the gateways and the first slot
DRAIN = 15.0


def record(job: dict[str, Any]) -> None:
    started = time.time()
    slot = datetime.fromisoformat(job["fire_claim"]["scheduled_at"]).timestamp()
    line = f"{started:.6f} {slot:.6f} {job['id']} {os.getpid()}\n".encode()
    fd = os.open(os.environ[SAMPLES_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)  # one write(2) with O_APPEND: lines never interleave
    finally:
        os.close(fd)


def _read(path: Path) -> list[tuple[float, float, str, int]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        started, slot, job_id, pid = line.split()
        out.append((float(started), float(slot), job_id, int(pid)))
    return out


def run(url: str, nodes: int, jobs: int, duration: float) -> dict[str, Any]:
    from bench.common import build_jobs

    with temp_home("cluster") as root:
        samples = root / "samples.txt"
        homes = [root / f"node{i}" for i in range(nodes)]
        os.environ["CRONKIT_STORE"] = url
        use_home(homes[0])
        start = math.ceil(time.time() + SETTLE)
        step = duration / jobs
        build_jobs(
            [("every 1h", start + i * step) for i in range(jobs)],
            {"kind": "python", "target": "bench.cluster:record"},
        )
        procs = []
        for home in homes:
            home.mkdir(parents=True, exist_ok=True)
            env = child_env(home, CRONKIT_STORE=url, **{SAMPLES_ENV: str(samples)})
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "cron", "gateway", "--no-webhook"],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        try:
            deadline = start + duration + DRAIN
            while time.time() < deadline and len(_read(samples)) < jobs:
                time.sleep(0.2)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        got = _read(samples)
    per_slot = Counter((job_id, round(slot, 3)) for _, slot, job_id, _ in got)
    lateness_ms = [(s - slot) * 1000 for s, slot, _, _ in got]
    return {
        "nodes": nodes,
        "jobs": jobs,
        "duration": duration,
        "fired": len(per_slot),
        "doubles": sum(1 for n in per_slot.values() if n > 1),
        "missing": jobs - len(per_slot),
        "per_node": sorted(Counter(pid for *_, pid in got).values(), reverse=True),
        "lateness_ms": summarize(lateness_ms),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--url",
        default=os.environ.get("CRONKIT_STORE", ""),
        help="the shared PostgreSQL database (default: $CRONKIT_STORE)",
    )
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--duration", type=float, default=60.0)
    a = ap.parse_args(argv)
    if not a.url.startswith(("postgresql:", "postgres:")):
        ap.error(f"--url must be a PostgreSQL database URL, got {a.url!r}")
    emit(run(a.url, a.nodes, a.jobs, a.duration))


if __name__ == "__main__":
    main()
