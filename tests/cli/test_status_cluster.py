"""``cronkit status`` on a shared PostgreSQL store (SPEC §12): every registered ticker node is
listed with host, pid, heartbeat age and state; the verdict is running while one node is
healthy; each stale or failing node gets a ``✗`` line naming it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from cron.registry import Registration
from cron.store import get_store, set_store
from tests.cli._helpers import cli


@pytest.fixture
def shared_home(home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CRONKIT_STORE", pg_url)
    set_store(None)
    yield
    set_store(None)


def _node(host: str, pid: int, age: float, *, ok: bool = True) -> None:
    store = get_store()
    at = store.clock() - timedelta(seconds=age)
    reg = Registration(store, provider="builtin", now=at)
    reg.node_id, reg.host, reg.pid, reg.home = f"{host}:{pid}:1", host, pid, f"/srv/{host}"
    reg.beat(ok=ok, error=None if ok else "StoreUnavailableError: connection refused", now=at)


def test_status_lists_every_node_and_runs_while_one_is_healthy(shared_home: None) -> None:
    _node("web1", 4242, 2)
    _node("web2", 777, 1800)
    _node("web3", 99, 1, ok=False)
    r = cli("status")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].startswith("✓ cluster running: 1 of 3 ticker nodes healthy")
    assert "  ticker nodes:" in r.stdout and "3 registered, 1 healthy" in r.stdout
    assert any(line.startswith("    ✓ web1 pid 4242: running, heartbeat") for line in lines)
    assert any(
        line.startswith("    ✗ web2 pid 777: STALE, last heartbeat 30m ago") for line in lines
    )
    assert any(
        line.startswith("    ✗ web3 pid 99: FAILING") and "connection refused" in line
        for line in lines
    )
    data = json.loads(cli("status", "--json").stdout)
    assert [(n["host"], n["state"]) for n in data["nodes"]] == [
        ("web2", "stale"),
        ("web1", "running"),
        ("web3", "failing"),
    ]


def test_status_with_every_node_stale_is_stopped(shared_home: None) -> None:
    _node("web1", 4242, 3600)
    r = cli("status")
    assert r.exit_code == 2
    assert r.stdout.splitlines()[0].startswith("✗ ticker stopped")
    assert "    ✗ web1 pid 4242: STALE" in r.stdout
