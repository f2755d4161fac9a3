"""The audit's cost: ``cron.audit.verify`` over N jobs x a window of ``every 1m`` slots.

    python -m bench.audit_cost --jobs 1000 --hours 24

Builds N interval jobs (``every 1m``) with their ``create`` events at the window's
start, writes one ``ok`` ledger row per slot straight into the ledger (1,000 jobs x
24 h = 1.44 M rows; writing them through the API would take the bench's whole
budget), drops one row and duplicates another, then times ``verify`` over the
window — the whole call: store scan, ledger reads, slot enumeration, matching.
Checks that the audit found exactly the planted problems.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta

from bench.common import ACTION_NOOP, build_jobs, emit, iso, temp_home, use_home

STEP = 60.0


def _ledger_rows(job_ids: list[str], start: float, slots: int) -> None:
    from cron import executions
    from cron.store import get_store

    executions.list_executions(limit=1)  # creates the ledger with its schema
    conn = sqlite3.connect(get_store().ledger_path(), timeout=60)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.executemany(
            "INSERT INTO job_events (job_id, kind, at, schedule, detail) VALUES (?, ?, ?, ?, ?)",
            [
                (
                    jid,
                    "create",
                    iso(start),
                    json.dumps({"kind": "interval", "seconds": 60, "display": "every 1m"}),
                    json.dumps({"state": "scheduled", "next_run_at": iso(start + STEP)}),
                )
                for jid in job_ids
            ],
        )

        def rows() -> object:
            for jid in job_ids:
                for k in range(1, slots + 1):
                    slot = start + k * STEP
                    yield (
                        f"{jid}{k:08x}",
                        jid,
                        iso(slot),
                        iso(slot + 0.004),
                        iso(slot + 0.005),
                        iso(slot + 0.05),
                        "ok",
                        "tick",
                    )

        conn.executemany(
            "INSERT INTO executions (id, job_id, scheduled_at, claimed_at, started_at, "
            "finished_at, status, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows(),
        )  # type: ignore[arg-type]
        # Plant one lost slot and one double on the first job.
        first = job_ids[0]
        conn.execute("DELETE FROM executions WHERE id = ?", (f"{first}{2:08x}",))
        conn.execute(
            "INSERT INTO executions (id, job_id, scheduled_at, claimed_at, status) "
            "SELECT id || 'dup', job_id, scheduled_at, claimed_at, status "
            "FROM executions WHERE id = ?",
            (f"{first}{3:08x}",),
        )
        conn.commit()
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    with temp_home("audit") as home:
        use_home(home)
        from cron import audit

        end = datetime(2025, 3, 2, tzinfo=UTC)
        start = end - timedelta(hours=args.hours)
        slots = int(args.hours * 3600 // STEP)
        ids = build_jobs([("every 1m", end.timestamp() + STEP)] * args.jobs, ACTION_NOOP)
        t = time.perf_counter()
        _ledger_rows(ids, start.timestamp(), slots)
        build_s = time.perf_counter() - t
        samples = []
        report = None
        for _ in range(args.reps):
            t = time.perf_counter()
            report = audit.verify(since=start, until=end, now=end)
            samples.append(time.perf_counter() - t)
        assert report is not None
        totals = report.totals()
        found = (len(report.lost), len(report.double))
        if totals["owed"] != args.jobs * slots or found != (1, 1):
            raise SystemExit(f"audit found {found} (owed {totals['owed']}), expected (1, 1)")
        emit(
            {
                "jobs": args.jobs,
                "slots": totals["owed"],
                "build_s": build_s,
                "verify_s": sorted(samples)[len(samples) // 2],
                "verify_s_all": samples,
                "lost": found[0],
                "double": found[1],
            }
        )


if __name__ == "__main__":
    main()
