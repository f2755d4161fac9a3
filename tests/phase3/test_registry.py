"""The ticker registry (SPEC §11–§12): every active ticker keeps a row fresh in the store's
ledger database; ``status`` on a shared store lists every node and fires while one is healthy;
a run owned by another host is judged by its claim's age, never by its pid."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cron import executions, jobs, paths, procinfo, registry, scheduler
from cron.registry import Registration, list_nodes
from cron.scheduler_provider import InProcessCronScheduler
from cron.status import ticker_status
from cron.store import get_store, set_store
from cron.stores import JobStore
from cron.stores.sqlite import SqliteJobStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _run(iterations: int, outcomes: list[BaseException | None]) -> list[list[registry.TickerNode]]:
    """Run the built-in ticker for ``iterations``; snapshot the registry at each wait."""
    seen: list[list[registry.TickerNode]] = []
    results = iter(outcomes)

    def tick_fn(**kw: object) -> int:
        exc = next(results, None)
        if exc is not None:
            raise exc
        return 0

    def wait_fn(ev: threading.Event, delay: float) -> None:
        seen.append(list_nodes(get_store()))
        if len(seen) >= iterations:
            ev.set()

    InProcessCronScheduler(tick_fn=tick_fn, wait_fn=wait_fn).start(threading.Event())
    return seen


def test_an_active_ticker_keeps_its_row_fresh_and_removes_only_its_own(home: Path) -> None:
    other = Registration(get_store(), provider="builtin", now=T0)
    other.node_id = "elsewhere:4242:99"
    other.host = "elsewhere"
    other.beat(ok=True, now=T0)
    seen = _run(2, [None, None])
    mine = [n for n in seen[0] if n.node_id == procinfo.owner_id()]
    assert len(mine) == 1
    node = mine[0]
    assert (node.host, node.pid, node.home, node.provider, node.state) == (
        procinfo.hostname(),
        os.getpid(),
        str(paths.home()),
        "builtin",
        "running",
    )
    assert node.last_error is None and node.success_at == node.heartbeat_at
    later = next(n for n in seen[1] if n.node_id == node.node_id)
    assert later.heartbeat_at >= node.heartbeat_at
    # Stopping removed this ticker's row and nobody else's.
    assert [n.node_id for n in list_nodes(get_store())] == ["elsewhere:4242:99"]


def test_a_failing_tick_reports_failing_with_the_error_then_recovers(home: Path) -> None:
    seen = _run(2, [RuntimeError("store unreachable"), None])
    first = next(n for n in seen[0] if n.node_id == procinfo.owner_id())
    assert first.state == "failing"
    assert first.last_error == "RuntimeError: store unreachable"
    assert first.success_at is None
    second = next(n for n in seen[1] if n.node_id == procinfo.owner_id())
    assert second.state == "running" and second.last_error is None
    assert second.success_at is not None


class _SharedSqlite(SqliteJobStore):
    """A SQLite file standing in for a shared database: status logic only (no network here)."""

    shared = True


@pytest.fixture
def shared(home: Path) -> Iterator[SqliteJobStore]:
    paths.cron_dir(create=True)
    store = _SharedSqlite(paths.cron_dir() / "shared.db")
    set_store(store)
    yield store
    set_store(None)


def _node(store: JobStore, name: str, at: datetime, *, ok: bool = True) -> None:
    reg = Registration(store, provider="builtin", now=at)
    reg.node_id = f"{name}:{100 + len(name)}:7"
    reg.host = name
    reg.beat(ok=ok, error=None if ok else "OperationalError: connection refused", now=at)


def test_status_on_a_shared_store_lists_every_node_and_runs_while_one_is_healthy(
    shared: SqliteJobStore,
) -> None:
    _node(shared, "alpha", T0 - timedelta(seconds=5))
    _node(shared, "beta", T0 - timedelta(hours=1))
    st = ticker_status(now=T0)
    # This home runs no ticker of its own; the cluster still fires on alpha.
    assert st.gateway_pid is None
    assert st.state == "running" and st.exit_code == 0
    by_host = {n["host"]: n for n in st.nodes}
    assert by_host["alpha"]["state"] == "running"
    assert by_host["alpha"]["heartbeat_age"] == pytest.approx(5.0)
    assert by_host["beta"]["state"] == "stale"


def test_status_on_a_shared_store_with_no_healthy_node_is_not_running(
    shared: SqliteJobStore,
) -> None:
    _node(shared, "alpha", T0 - timedelta(seconds=5), ok=False)
    _node(shared, "beta", T0 - timedelta(hours=1))
    st = ticker_status(now=T0)
    assert st.state == "stopped" and st.exit_code == 2
    assert {n["state"] for n in st.nodes} == {"failing", "stale"}


@pytest.mark.usefixtures("file_store")
def test_a_store_that_is_not_shared_lists_no_nodes(home: Path) -> None:
    """About a store no other machine uses: a file store's."""
    _node(get_store(), "alpha", T0)
    assert ticker_status(now=T0).nodes == []


def _remote_run(now: datetime) -> tuple[dict[str, object], str]:
    """A job claimed by a process on another host, its ledger row ``running``."""
    job = jobs.create_job("every 1m", "true", now=now)
    claimed = jobs.claim_due_jobs(now + timedelta(minutes=1))
    assert [j["id"] for j, _ in claimed] == [job["id"]]
    token = claimed[0][1]
    executions.start_run(
        token,
        job_id=job["id"],
        source="tick",
        owner="otherhost:4242:12345",
        now=now + timedelta(minutes=1),
    )
    return job, token


def test_another_hosts_run_is_left_alone_while_its_claim_is_fresh(home: Path) -> None:
    job, token = _remote_run(T0)
    assert scheduler.recover_interrupted(now=T0 + timedelta(minutes=2)) == 0
    assert executions.get_execution(token)["status"] == "running"
    assert (jobs.get_job(job["id"])["fire_claim"] or {}).get("token") == token


def test_another_hosts_run_becomes_unknown_once_its_claim_is_stale(home: Path) -> None:
    job, token = _remote_run(T0)
    ttl = get_store().claim_ttl
    later = T0 + timedelta(minutes=1, seconds=ttl + 1)
    assert scheduler.recover_interrupted(now=later) == 1
    row = executions.get_execution(token)
    assert row["status"] == "unknown"
    assert "another host" in row["error"] and "not rerun" in row["error"]
    assert jobs.get_job(job["id"])["fire_claim"] is None  # released: the next slot may fire


def test_a_cut_off_hosts_late_result_is_refused_by_the_job_and_by_the_ledger(
    home: Path,
) -> None:
    job, token = _remote_run(T0)
    ttl = get_store().claim_ttl
    later = T0 + timedelta(minutes=1, seconds=ttl + 1)
    assert scheduler.recover_interrupted(now=later) == 1
    # The partitioned owner comes back and reports: its token no longer holds anything.
    assert jobs.mark_job_run(job["id"], token, success=True, now=later) is False
    assert executions.finish(token, status="ok", now=later) is False
    row = executions.get_execution(token)
    assert row["status"] == "unknown"  # one outcome per slot: the first one stands
    assert jobs.get_job(job["id"])["last_status"] != "ok"


# -- on a real shared store: PostgreSQL ----------------------------------------------------------


@pytest.fixture
def pg_home(home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("CRONKIT_STORE", pg_url)
    set_store(None)
    yield pg_url
    set_store(None)


def test_on_postgresql_every_node_is_listed_by_the_database_clock(pg_home: str) -> None:
    store = get_store()
    assert store.shared
    db_now = store.clock()
    _node(store, "alpha", db_now - timedelta(seconds=2))
    _node(store, "beta", db_now - timedelta(minutes=30))
    seen = _run(1, [None])  # this home's own ticker registers beside them
    hosts = {n.host for n in seen[0]}
    assert {"alpha", "beta", procinfo.hostname()} <= hosts
    assert [n.home for n in seen[0] if n.node_id == procinfo.owner_id()] == [str(paths.home())]
    st = ticker_status()
    assert st.state == "running"
    states = {n["host"]: n["state"] for n in st.nodes}
    assert states["alpha"] == "running" and states["beta"] == "stale"
    assert not any(n["this"] for n in st.nodes)  # our ticker stopped: its row is gone


def test_recovery_passes_come_a_third_of_a_claim_ttl_apart() -> None:
    # A dead node's run is settled once its claim is stale: a pass every ttl/3 finds it
    # within a third of a TTL after that (the default TTL keeps the old once-a-minute pace).
    from cron.ticker import RECOVER_EVERY, recover_every

    assert recover_every(300) == RECOVER_EVERY == 60
    assert recover_every(6) == pytest.approx(2.0)
    assert recover_every(0.5) == 1.0  # never a busy loop
