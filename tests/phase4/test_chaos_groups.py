"""Chaos: gateways stopped by ``kill -9`` or SIGTERM at random moments while ``command``
jobs (long ``sleep``s, overlapping ones, short ones) run.

Watched from ``/proc`` every 100 ms: at no moment may one job have two live process
groups (two runs at once), and after the final, graceful stop no group of any job may
be left. Seeded, and bounded to ~30 s of trials.
"""

from __future__ import annotations

import random
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cron import audit, executions, jobs
from cron.claim import parse_ts
from tests.phase4._groups import GroupSampler, job_groups, kill_groups
from tests.phase4._support import start_gateway

pytestmark = pytest.mark.slow

BUDGET = 26.0
"""Seconds of trials (the final stop comes after)."""


def test_kill_9_and_sigterm_trials_never_overlap_runs_nor_orphan_groups(home: Path) -> None:
    rng = random.Random(12)
    made = [
        jobs.create_job("every 1s", "sleep 100000", name="forever"),
        jobs.create_job("every 1s", "sleep 3", name="overlapping"),
        jobs.create_job("every 2s", "sleep 0.4", name="short"),
    ]
    ids = [j["id"] for j in made]
    kills = terms = orphans_after_term = 0
    seen: set[int] = set()
    try:
        with GroupSampler(ids, every=0.1) as sampler:
            started = time.monotonic()
            while time.monotonic() - started < BUDGET:
                grace = rng.choice(["0.2", "0.5", "1"])
                gw = start_gateway(home, "--no-webhook", "--interval", "0.2", "--grace", grace)
                time.sleep(rng.uniform(0.3, 2.5))
                if rng.random() < 0.5:
                    gw.proc.send_signal(signal.SIGKILL)
                    gw.proc.wait(10)
                    kills += 1
                else:
                    assert gw.stop(signal.SIGTERM, timeout=20) == 0, gw.stderr()
                    terms += 1
                    left = {j: g for j, g in job_groups(ids).items() if g}
                    orphans_after_term += sum(len(g) for g in left.values())
            # The final stop: whatever the last trial left, a gateway recovers it and
            # a graceful stop leaves nothing behind.
            gw = start_gateway(home, "--no-webhook", "--interval", "0.2", "--grace", "0.5")
            time.sleep(1.5)
            assert gw.stop(signal.SIGTERM, timeout=20) == 0, gw.stderr()
            final_orphans = job_groups(ids)
        for job in ids:
            seen |= sampler.seen[job]
        two_at_once = len(sampler.overlaps)
        summary = (
            f"chaos: {kills} kill -9 + {terms} SIGTERM trials, {sampler.samples} samples, "
            f"{len(seen)} job process groups seen, {two_at_once} moments with two live "
            f"runs of one job, {orphans_after_term} groups left after a SIGTERM stop, "
            f"{sum(len(g) for g in final_orphans.values())} after the final stop"
        )
        print(summary)
        assert kills >= 2 and terms >= 2, summary
        assert sampler.samples > 150, summary
        assert len(seen) >= 6, summary  # the trials really ran jobs
        assert sampler.overlaps == [], (summary, sampler.overlaps[:5])
        assert orphans_after_term == 0, summary
        assert all(not g for g in final_orphans.values()), (summary, final_orphans)
        assert executions.list_live_executions() == []
        for job in ids:
            assert jobs.get_job(job)["fire_claim"] is None
        # The completeness audit over the whole chaos: every slot the three jobs owed got
        # exactly one outcome (ok, unknown after a kill -9, interrupted, skipped overlap,
        # or covered by a late fire after a restart) — none lost, none run twice.
        report = audit.verify(
            since=min(parse_ts(j["created_at"]) for j in made), until=datetime.now(UTC)
        )
        print("audit:", report.totals())
        assert report.ok, (summary, report.lost[:5], report.double[:5])
        assert report.totals()["accounted"] >= 20, report.totals()
    finally:
        kill_groups(seen)
