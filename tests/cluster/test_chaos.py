"""Cluster chaos (SPEC §11): three gateways on one store, SIGKILLed and restarted at random.

Each job appends ``job slot pid`` to one marker file when it starts, so "did a slot run
twice?" is answered twice: by the jobs themselves and by the shared ledger.
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime
from typing import Any

from cron import audit, jobs
from cron.claim import parse_ts
from tests.cluster.harness import (
    Cluster,
    Fires,
    Kill,
    chaos_jobs,
    doubles,
    fire_rows,
    gaps,
    kill_schedule,
    lateness,
    ledger_rows,
    marker_command,
    percentile,
    run_schedule,
    slot_key,
    status_counts,
    summary_line,
    wait_for,
)

NODES = ["a", "b", "c"]
CLAIM_TTL = 5.0
INTERVAL = 1.0
JOBS = 20
SEED = int(os.environ.get("CRONKIT_CLUSTER_SEED", "1414"))
GAP_MARGIN = 4.0
"""Slack for a loaded 2-core machine: a tick's own latency (process spawns, the shared
store's write lock) and a claim queued behind a burst before its run starts."""


def _chaos(
    cluster: Cluster,
    seconds: float,
    *,
    rng: random.Random,
    label: str,
    skews: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Start every node, create the jobs, play a kill schedule, bring every node back,
    stop; return what happened (the assertions are the caller's)."""
    for name in cluster.nodes:
        cluster[name].start(wait=False, skew=(skews or {}).get(name))
    for node in cluster.nodes.values():
        node.wait_ready()
    plans = chaos_jobs(rng, JOBS)
    made = [
        jobs.create_job(p.schedule, marker_command(cluster.marker, p.sleep), name=p.name)
        for p in plans
    ]
    plan_of = {j["id"]: p for j, p in zip(made, plans, strict=True)}
    created = time.time()
    events = kill_schedule(rng, NODES, seconds)
    print(f"[cluster] {label}: seed {SEED}, {len(events)} events:")
    for ev in events:
        print(f"  {ev}")
    kills: list[Kill] = run_schedule(cluster, events, skews=skews)
    # The window in which some node always lived (run_schedule never kills the last one).
    chaos_end = time.time()
    # The cluster comes back: each restarted node settles its dead predecessors' runs.
    for node in cluster.nodes.values():
        if not node.alive:
            node.start(skew=(skews or {}).get(node.name))
    time.sleep(CLAIM_TTL + 1)
    cluster.stop_all()
    rows = ledger_rows()
    return {
        "made": made,
        "plan_of": plan_of,
        "created": created,
        "chaos_end": chaos_end,
        "kills": kills,
        "rows": [r for r in rows if r["job_id"] in plan_of],
        "events": events,
    }


def _check(
    cluster: Cluster,
    run: dict[str, Any],
    *,
    label: str,
    gap_slack: float = 0.0,
    at: str = "started_at",
) -> None:
    """The cluster's promises over one chaos run; ``at`` is the ledger column whose clock
    the gaps are measured on (``claimed_at``: the store's clock, for skewed nodes)."""
    rows, kills, plan_of = run["rows"], run["kills"], run["plan_of"]
    fires = Fires(cluster.marker).read()
    marker_doubles = Fires(cluster.marker).doubles()
    ledger_doubles = doubles(rows)
    late = lateness(rows)
    claim_late = lateness(rows, at="claimed_at")
    killed_rows = {r["id"]: r for k in kills for r in k.live_rows}
    by_id = {r["id"]: r for r in rows}
    not_unknown = {
        i: by_id.get(i, {}).get("status")
        for i in killed_rows
        if by_id.get(i, {}).get("status") != "unknown"
    }
    rerun = [
        (r["job_id"], r["scheduled_at"])
        for r in killed_rows.values()
        if sum(
            1
            for f in fire_rows(rows)
            if (f["job_id"], slot_key(f["scheduled_at"]))
            == (r["job_id"], slot_key(r["scheduled_at"]))
        )
        > 1
    ]
    settled = [by_id[i] for i in killed_rows if by_id.get(i, {}).get("status") == "unknown"]
    kill_at = {r["id"]: k.at for k in kills for r in k.live_rows}
    settle_delay = [
        datetime.fromisoformat(r["finished_at"]).timestamp() - kill_at[r["id"]]
        for r in settled
        if r.get("finished_at")
    ]
    # A job's fires may pause, never stop, while a node lives. The bound, per job of
    # period p whose runs last d: a slot comes due at most p after the last one; a run
    # outliving the next slot makes it `skipped`, so the next fire is at most d + p
    # after a start; a node killed mid-run leaves its claim live for at most claim_ttl
    # after its last refresh (the claim keeper re-dates it every claim_ttl/3), during
    # which the due slots are skipped (overlap), then the next due slot fires on a
    # survivor: at most d + claim_ttl + p after the killed run began, plus the margin.
    window = (run["created"], run["chaos_end"])
    silences = gaps(rows, plan_of, *window, at=at)
    bound = {j: p.period + p.sleep + CLAIM_TTL + GAP_MARGIN + gap_slack for j, p in plan_of.items()}
    too_long = {
        plan_of[j].name: (round(g, 2), round(bound[j], 2))
        for j, g in silences.items()
        if g > bound[j]
    }
    report = audit.verify(
        since=datetime.fromtimestamp(run["created"], UTC),
        until=datetime.fromtimestamp(run["chaos_end"], UTC),
    )
    totals = report.totals()
    print(
        summary_line(
            label,
            seed=SEED,
            fires=len(fires),
            ledger_runs=len(fire_rows(rows)),
            kills=len(kills),
            killed_mid_run=len(killed_rows),
            marker_doubles=len(marker_doubles),
            ledger_doubles=len(ledger_doubles),
            lateness_p50=percentile(late, 50),
            lateness_p99=percentile(late, 99),
            lateness_max=max(late, default=float("nan")),
            lateness_min=min(late, default=float("nan")),
            claim_lateness_p50=percentile(claim_late, 50),
            claim_lateness_p99=percentile(claim_late, 99),
            longest_gap=max(silences.values(), default=0.0),
            settle_p50=percentile(settle_delay, 50),
            settle_max=max(settle_delay, default=float("nan")),
        )
    )
    print(f"[cluster] {label}: ledger statuses {status_counts(rows)}")
    print(f"[cluster] {label}: audit {totals}")
    if report.lost:
        print(
            f"[cluster] {label}: lost slots (first 10): "
            f"{[(p.job_name, p.slot, p.reason) for p in report.lost[:10]]}"
        )
    context = f"{label}, seed {SEED}\n{cluster.logs()}"
    assert len(kills) >= 3, f"the schedule must really kill nodes ({len(kills)})"
    assert len(fires) >= 10 * JOBS, (len(fires), context)
    # Every job is `printf; sleep`: a run ends ok, or unknown (killed), or interrupted
    # (the final stop's grace), never error.
    assert set(status_counts(rows)) <= {"ok", "unknown", "interrupted", "skipped"}, (
        status_counts(rows),
        [r["error"] for r in rows if r["status"] == "error"][:3],
    )
    assert marker_doubles == {}, (marker_doubles, context)
    assert ledger_doubles == {}, (ledger_doubles, context)
    assert not report.double, ([(p.job_name, p.slot) for p in report.double[:10]], context)
    assert killed_rows, "no kill landed mid-run: the schedule proves nothing about it"
    assert not_unknown == {}, ("killed runs not settled unknown", not_unknown, context)
    assert rerun == [], ("a killed run's slot ran again", rerun)
    assert too_long == {}, ("a job stopped firing while a node lived", too_long, context)
    # Nothing left running: every row final, every claim released.
    assert [r for r in rows if r["status"] in ("claimed", "running")] == []
    wait_for(
        lambda: all(jobs.get_job(j)["fire_claim"] is None for j in plan_of),
        5,
        what="every claim released after the final stop",
    )


def test_kill_restart_chaos_never_fires_a_slot_twice_and_never_stops(make_cluster) -> None:
    """≥ 60 s of SIGKILLs and restarts of random nodes (never the last live one) while
    20 jobs fire every 1–3 s: 0 doubles (marker file, ledger, audit), no job silent
    for longer than the bound, every run killed mid-way ``unknown`` and not rerun."""
    cluster = make_cluster(NODES, interval=INTERVAL, claim_ttl=CLAIM_TTL)
    rng = random.Random(SEED)
    run = _chaos(cluster, 60.0, rng=rng, label="chaos")
    _check(cluster, run, label="chaos")


SKEWS = {"b": "+30s", "c": "-30s"}


def test_chaos_with_node_clocks_skewed_30s_either_way_never_fires_a_slot_twice(
    make_cluster,
) -> None:
    """The chaos run, shorter, with node b's clock 30 s fast and node c's 30 s slow
    (libfaketime). On PostgreSQL claims and claim ages use the database's clock, so
    the skew changes nothing the cluster decides: same promises, gaps measured on
    ``claimed_at`` (the store's clock; ``started_at`` is each node's own)."""
    cluster = make_cluster(NODES, interval=INTERVAL, claim_ttl=CLAIM_TTL)
    rng = random.Random(SEED + 1)
    run = _chaos(cluster, 30.0, rng=rng, label="skew", skews=SKEWS)
    by_node = {owner: name for owner, (name, _) in cluster.owners().items()}
    skewed = {name: [] for name in NODES}
    for r in fire_rows(run["rows"]):
        name = by_node.get(r["owner"])
        if name is not None and r.get("started_at"):
            skewed[name].append(
                (parse_ts(r["started_at"]) - parse_ts(r["claimed_at"])).total_seconds()
            )
    print(
        summary_line(
            "skew: started_at - claimed_at per node (node clock vs store clock)",
            **{k: percentile(v, 50) for k, v in skewed.items()},
        )
    )
    _check(cluster, run, label="skew", at="claimed_at")
