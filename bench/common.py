"""Shared helpers: statistics, machine info, temp homes, bulk stores, child processes."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
ACTION_RECORD = {"kind": "python", "target": "bench.actions:record"}
ACTION_NOOP = {"kind": "python", "target": "bench.actions:noop"}


# -- statistics ----------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100) of a non-empty sequence."""
    data = sorted(values)
    if not data:
        return math.nan
    if len(data) == 1:
        return float(data[0])
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return float(data[lo] + (data[hi] - data[lo]) * (pos - lo))


def summarize(values: Sequence[float]) -> dict[str, float]:
    """count / min / p50 / p90 / p99 / max / mean of raw samples."""
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "min": float(min(values)),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": float(max(values)),
        "mean": float(statistics.fmean(values)),
    }


def median_of(rows: Iterable[dict[str, Any]], key: str) -> float | None:
    vals = [float(r[key]) for r in rows if r.get(key) is not None and not _isnan(r[key])]
    return statistics.median(vals) if vals else None


def _isnan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


# -- machine ------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_mb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _fs_type(path: Path) -> str:
    try:
        out = subprocess.run(
            ["df", "-T", str(path)], capture_output=True, text=True, timeout=5, check=False
        ).stdout.splitlines()
        return out[1].split()[1] if len(out) > 1 else "unknown"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    try:
        import apscheduler

        aps = apscheduler.__version__
    except ImportError:
        aps = None
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": affinity,
        "cpu_model": _cpu_model(),
        "mem_total_mb": _mem_total_mb(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "apscheduler": aps,
        "work_fs": _fs_type(WORK if WORK.exists() else ROOT),
        "loadavg_start": list(os.getloadavg()),
    }


# -- homes and stores ------------------------------------------------------------------


@contextlib.contextmanager
def temp_home(prefix: str) -> Iterator[Path]:
    """A fresh CRONKIT_HOME under ``bench/.work/`` (removed afterwards)."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=WORK))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def use_home(home: Path) -> None:
    """Point this process at ``home`` (paths are resolved per call)."""
    os.environ["CRONKIT_HOME"] = str(home)
    os.environ["TZ"] = "UTC"
    with contextlib.suppress(AttributeError):
        time.tzset()


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def reset_store() -> None:
    """Empty the configured store in one step (bench set-up only: no API does this)."""
    import sqlite3

    from cron.store import get_store
    from cron.stores.json import JsonJobStore
    from cron.stores.sqlite import SqliteJobStore

    store = get_store()
    if isinstance(store, JsonJobStore):
        store.path.unlink(missing_ok=True)
    elif isinstance(store, SqliteJobStore) and store.path.exists():
        with sqlite3.connect(store.path) as conn:
            conn.execute("DELETE FROM jobs")
    elif store.url.startswith(("postgresql:", "postgres:")):
        import psycopg

        # The real URL (store.url masks a password; the bench's server has none).
        url = os.environ["CRONKIT_STORE"]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM cronkit_jobs WHERE true")


def build_jobs(specs: Sequence[tuple[str, float]], action: dict[str, Any]) -> list[str]:
    """Replace the store under the current home with one job per ``(schedule, next_run)``.

    Writing N jobs through ``create_job`` costs N read-modify-writes (O(N^2)),
    so one job is created through the API as a template and the rest are
    clones written in a single store transaction. ``next_run`` is the epoch of
    the job's first slot. Returns the job ids in order.
    """
    from cron import jobs
    from cron.schedule import parse_schedule
    from cron.store import get_store

    reset_store()
    template = jobs.create_job("every 1d", action, name="bench-template")
    base = json.dumps(template)
    parsed: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for i, (sched_text, next_run) in enumerate(specs):
        if sched_text not in parsed:
            parsed[sched_text] = parse_schedule(sched_text)
        job = json.loads(base)
        job["id"] = f"{i + 1:012x}"
        job["name"] = f"bench-{i}"
        job["schedule"] = dict(parsed[sched_text])
        job["next_run_at"] = iso(next_run)
        out.append(job)
    store = get_store()
    store.delete(template["id"])
    store.insert_many(out)
    return [j["id"] for j in out]


# -- child processes -----------------------------------------------------------------


def child_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    extra_path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + extra_path if extra_path else "")
    env["TZ"] = "UTC"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if home is not None:
        env["CRONKIT_HOME"] = str(home)
    env.update(extra)
    return env


def run_child(module: str, args: Sequence[str], *, timeout: float) -> dict[str, Any]:
    """Run ``python -m module args`` in a fresh interpreter; its last stdout line is JSON."""
    cmd = [sys.executable, "-m", module, *args]
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or "").strip().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(cmd[2:])} exited {proc.returncode}: " + " | ".join(tail))
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def emit(result: dict[str, Any]) -> None:
    """A child's result: one JSON line on stdout."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
