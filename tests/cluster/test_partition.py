"""A node cut off from PostgreSQL mid-run (SPEC §11), with a real network partition.

Node p runs in a network namespace of its own (and a UTS namespace: to the others it
is another host, so only its claim's age can tell them it is gone), reaching the
database over a veth pair. It claims a long run; the link is cut for longer than
``claim_ttl``. p must fence itself: its command's process group is gone before the
claim it last wrote could be judged stale (so the job never runs on two nodes at once).
The survivors must settle that run ``unknown`` by its claim's age and keep firing; when
the link returns, p's late result must be refused — the job's result not applied, the
ledger row still ``unknown`` — and the slot never ran twice.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from cron import jobs
from cron.claim import parse_ts
from cron.procgroup import ProcessGroup
from cron.registry import list_nodes
from cron.store import get_store
from tests.cluster.harness import (
    Fires,
    Forwarder,
    Netns,
    NetnsUnavailable,
    doubles,
    fire_rows,
    gaps,
    ledger_rows,
    marker_command,
    slot_key,
    summary_line,
    wait_for,
)

CLAIM_TTL = 4.0
LONG_RUN = 25.0
"""Seconds p's run would sleep: it would outlive the partition if p did not fence it."""
PARTITION_MAX = 25.0
"""Longest the link stays cut while the survivors settle and take over."""
SHORT_JOBS = 6
GAP_MARGIN = 4.0


def _rows(job_id: str) -> list[dict[str, Any]]:
    return [r for r in ledger_rows() if r["job_id"] == job_id]


def _result_fields(job_id: str) -> tuple[Any, ...]:
    """What only an applied result (``mark_job_run``) writes: ``last_run_at`` and the
    streak. (``last_status`` is no witness: a tick that skips an overlapping slot
    writes ``skipped`` there.)"""
    job = jobs.get_job(job_id)
    return (job["last_run_at"], job["failure_streak"])


def _beat_of(home: str) -> datetime | None:
    for n in list_nodes(get_store()):
        if n.home == home:
            return n.heartbeat_at
    return None


@pytest.mark.parametrize("store_target", ["postgresql"], indirect=True)
def test_a_partitioned_node_is_settled_by_claim_age_and_its_late_result_refused(
    make_cluster,
    store_target,
) -> None:
    cluster = make_cluster(["a", "b", "p"], interval=1.0, claim_ttl=CLAIM_TTL)
    try:
        netns = Netns().__enter__()
    except NetnsUnavailable as exc:
        pytest.skip(f"network namespaces unavailable here: {exc}")
    forwarder = None
    try:
        parts = urlsplit(store_target.url)
        assert parts.hostname and parts.port, store_target.url
        forwarder = Forwarder(netns.host_addr, (parts.hostname, parts.port))
        netloc = parts.netloc.rsplit("@", 1)
        where = f"{netns.host_addr}:{forwarder.port}"
        netloc_p = f"{netloc[0]}@{where}" if len(netloc) == 2 else where
        cluster.use_store_url("p", urlunsplit(parts._replace(netloc=netloc_p)))
        p = cluster["p"]

        # p alone: it claims the long job's first slot and starts the run.
        p.start(wrap=netns.wrap("cluster-p"))
        assert p.current.owner.startswith("cluster-p:"), p.current.owner
        long_job = jobs.create_job(
            "every 3s",
            marker_command(cluster.marker, LONG_RUN),
            name="long",
            now=datetime.now(UTC) - timedelta(seconds=2.5),
        )
        held = wait_for(
            lambda: [r for r in _rows(long_job["id"]) if r["status"] == "running"],
            20,
            what="p runs the long job",
        )[0]
        assert held["owner"] == p.current.owner, held
        # The command's shell leads its process group and wrote its pid to the marker.
        fire = wait_for(
            lambda: [f for f in Fires(cluster.marker).read() if f.job_id == long_job["id"]],
            20,
            what="p's run writes its marker line",
        )[0]
        group = ProcessGroup.of_leader(fire.pid)
        assert group.alive(), fire
        cluster["a"].start(wait=False)
        cluster["b"].start(wait=False)
        cluster["a"].wait_ready()
        cluster["b"].wait_ready()
        short = [
            jobs.create_job(
                f"every {1 + i % 2}s", marker_command(cluster.marker, 0), name=f"short-{i}"
            )
            for i in range(SHORT_JOBS)
        ]
        time.sleep(2.0)

        netns.cut()
        cut_at = time.time()
        # p cannot re-date its claim from now on: this is the last date it wrote.
        last_refresh = parse_ts(jobs.get_job(long_job["id"])["fire_claim"]["at"])
        assert last_refresh is not None
        beat_at_cut = _beat_of(str(p.home))
        wait_for(
            lambda: not group.alive(),
            CLAIM_TTL * 2,
            step=0.02,
            what="p fences itself: its command's process group ends",
        )
        fenced_at = get_store().clock()  # the database's clock (this host's, offset measured)
        stale_at = last_refresh + timedelta(seconds=CLAIM_TTL)
        assert fenced_at < stale_at, (fenced_at, stale_at)

        def settled_and_taken_over() -> bool:
            rows = _rows(long_job["id"])
            mine = next(r for r in rows if r["id"] == held["id"])
            others = [
                r
                for r in fire_rows(rows)
                if r["id"] != held["id"] and r["owner"] != p.current.owner
            ]
            return mine["status"] == "unknown" and bool(others)

        try:
            try:
                wait_for(
                    settled_and_taken_over,
                    PARTITION_MAX,
                    step=0.2,
                    what="the survivors settle p's run unknown and fire the job",
                )
            except AssertionError as exc:
                seen = [
                    (r["status"], r["owner"].split(":")[0], r["scheduled_at"][11:19])
                    for r in _rows(long_job["id"])
                ]
                raise AssertionError(f"{exc}; the long job's rows: {seen}") from None
        finally:
            settled_in = time.time() - cut_at
            time.sleep(max(0.0, CLAIM_TTL + 1 - settled_in))  # cut for > claim_ttl
            before_heal = _result_fields(long_job["id"])
            netns.heal()
            healed_at = time.time()

        # p comes back: its run ends, its result is refused, its ticker beats again.
        def refused() -> bool:
            text = p.current.log.read_text(encoding="utf-8", errors="replace")
            return (
                f"ledger row {held['id']} of job {long_job['id']} is already unknown" in text
                and "result not recorded on the job" in text
            )

        def resumed() -> bool:
            beat = _beat_of(str(p.home))
            return beat is not None and (beat_at_cut is None or beat > beat_at_cut)

        wait_for(resumed, 40, step=0.2, what="p's ticker beats again after the heal")
        resumed_at = time.time()
        wait_for(refused, LONG_RUN + 30, step=0.5, what="p reports its late result, refused")
        # Nobody else finished a run of the job meanwhile (the survivor's run is as long),
        # so an applied result would show here.
        assert _result_fields(long_job["id"]) == before_heal, "p's late result was applied"
        cluster.stop_all()
    finally:
        cluster.close()
        if forwarder is not None:
            forwarder.close()
        netns.close()

    rows = ledger_rows()
    mine = next(r for r in rows if r["id"] == held["id"])
    long_rows = [r for r in fire_rows(rows) if r["job_id"] == long_job["id"]]
    slot = slot_key(held["scheduled_at"])
    marker = Fires(cluster.marker)
    silences = gaps(rows, [j["id"] for j in short], cut_at, healed_at, at="claimed_at")
    print(
        summary_line(
            "partition",
            settled_after=settled_in,
            cut_for=healed_at - cut_at,
            p_resumed_after_heal=resumed_at - healed_at,
            fenced_before_stale=(stale_at - fenced_at).total_seconds(),
            takeovers=len([r for r in long_rows if r["owner"] != mine["owner"]]),
            short_fires_while_cut=sum(
                1
                for r in fire_rows(rows)
                if r["job_id"] != long_job["id"]
                and cut_at <= datetime.fromisoformat(r["claimed_at"]).timestamp() <= healed_at
            ),
            longest_short_gap=max(silences.values()),
        )
    )
    print(f"[cluster] partition: p's row {mine['status']}: {mine['error']}")
    assert mine["status"] == "unknown", mine
    assert "another host" in (mine["error"] or ""), mine
    assert doubles(rows) == {} and marker.doubles() == {}, (doubles(rows), marker.doubles())
    assert [r["id"] for r in long_rows if slot_key(r["scheduled_at"]) == slot] == [held["id"]]
    assert len([f for f in marker.read() if (f.job_id, f.slot) == (long_job["id"], slot)]) == 1
    assert any(r["owner"] != mine["owner"] for r in long_rows), "nobody took the job over"
    bound = 2.0 + CLAIM_TTL + GAP_MARGIN
    assert max(silences.values()) <= bound, (silences, bound)
