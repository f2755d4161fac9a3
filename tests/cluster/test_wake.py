"""A change made through one node wakes every node's ticker within 1 s (SPEC §11).

Every ticker iteration beats its registry row, so a row's ``heartbeat_at`` moving is
a ticker waking. The nodes sleep ``cron.interval = 30`` s with nothing due, so the
test first watches them stay asleep, and then each wake is compared with when that
node's own poll was due: a beat within 1 s of the change and long before the poll
can only be the change's doing.
"""

from __future__ import annotations

import re
import time
from datetime import datetime

import pytest

from cron import executions
from cron.registry import list_nodes
from cron.store import get_store
from tests.cluster.harness import Cluster, summary_line, wait_for

INTERVAL = 30.0
QUIET = 3.0
"""How long every node must be seen asleep before a change."""
WAKE_BOUND = 1.0


def _beats(cluster: Cluster) -> dict[str, datetime]:
    homes = {str(n.home): name for name, n in cluster.nodes.items()}
    return {homes[n.home]: n.heartbeat_at for n in list_nodes(get_store()) if n.home in homes}


def _event_at(job_id: str, kind: str) -> datetime:
    """When the store recorded the mutation (its job event; written just after the job)."""
    ledger = get_store().ledger()
    with ledger.read() as conn:
        row = conn.execute(
            "SELECT at FROM job_events WHERE job_id = ? AND kind = ? ORDER BY id DESC LIMIT 1",
            (job_id, kind),
        ).fetchone()
    assert row is not None, (job_id, kind, executions.list_executions(job_id))
    return datetime.fromisoformat(row[0])


def _quiet(cluster: Cluster) -> dict[str, datetime]:
    """Wait until no node has beaten for ``QUIET`` s (start-up iterations over); the beats."""

    def settled() -> dict[str, datetime] | None:
        before = _beats(cluster)
        time.sleep(QUIET)
        after = _beats(cluster)
        return after if len(after) == len(cluster.nodes) and after == before else None

    return wait_for(
        settled,
        timeout=3 * QUIET + 3,
        step=0,
        what="every ticker asleep (no registry beat) for 3 s",
    )


# On a shared SQLite file too: its version() moves on job writes only, so one node's
# heartbeat (a registry row in the same file) never wakes the others.
@pytest.mark.parametrize("store_target", ["postgresql", "sqlite"], indirect=True)
def test_a_change_through_node_a_wakes_every_ticker_within_a_second(make_cluster) -> None:
    cluster = make_cluster(["a", "b", "c"], interval=INTERVAL, claim_ttl=5.0)
    cluster.start_all()
    wait_for(lambda: len(_beats(cluster)) == 3, 20, what="three registry rows")
    a = cluster["a"]
    latencies: dict[str, list[float]] = {name: [] for name in cluster.nodes}
    job_id = ""
    for step in ("add", "edit", "pause"):
        asleep = _quiet(cluster)
        if step == "add":
            done = a.cli("add", "every 1h", "--name", "woken", "--", "true")
            assert done.returncode == 0, done.stderr
            found = re.search(r"\b([0-9a-f]{12})\b", done.stdout)
            assert found, done.stdout
            job_id = found.group(1)
            changed = _event_at(job_id, "create")
        elif step == "edit":
            done = a.cli("edit", job_id, "--name", "woken-again")
            assert done.returncode == 0, done.stderr
            changed = _event_at(job_id, "edit")
        else:
            done = a.cli("pause", job_id)
            assert done.returncode == 0, done.stderr
            changed = _event_at(job_id, "pause")
        woke = wait_for(
            lambda asleep=asleep: (lambda b: b if all(b[n] > asleep[n] for n in b) else None)(
                _beats(cluster)
            ),
            timeout=10,
            what=f"every ticker beats after the {step}",
        )
        for name, beat in woke.items():
            latency = (beat - changed).total_seconds()
            assert latency >= 0, f"node {name} beat before the {step}: it was not asleep"
            own_poll = asleep[name].timestamp() + INTERVAL
            assert beat.timestamp() < own_poll - 5, (
                f"node {name} beat at its own poll, not because of the {step}"
            )
            latencies[name].append(latency)
    worst = max(max(v) for v in latencies.values())
    print(
        summary_line(
            f"wake on {cluster.store.backend}",
            worst=worst,
            **{f"node_{k}": "/".join(f"{x:.3f}" for x in v) for k, v in latencies.items()},
        )
    )
    for name, values in latencies.items():
        assert all(v <= WAKE_BOUND for v in values), (name, values)
