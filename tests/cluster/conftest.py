"""Fixtures of the cluster suite: the one shared store, and clusters that always clean up.

``store_target`` is the only place that decides which store a cluster shares. A test
may choose backends with ``@pytest.mark.parametrize("store_target", [...],
indirect=True)``; otherwise it runs on :data:`DEFAULT_BACKEND`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cron.store import set_store
from tests.cluster.harness import Cluster, StoreTarget

DEFAULT_BACKEND = os.environ.get("CRONKIT_CLUSTER_BACKEND", "postgresql")
"""What a cluster shares unless a test asks for another: a fresh PostgreSQL database
(SPEC §11), or ``sqlite``: one SQLite file used by every node
(``CRONKIT_CLUSTER_BACKEND=sqlite`` runs the default-store tests on it)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.cluster)
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> StoreTarget:
    """The store every node of the test's cluster shares (its URL goes in each config)."""
    backend = getattr(request, "param", DEFAULT_BACKEND)
    if backend == "sqlite":
        # Three processes on one machine sharing one SQLite file is a real shared store.
        return StoreTarget("sqlite", f"sqlite:///{tmp_path / 'cluster.db'}")
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")
        return StoreTarget("postgresql", url, host=_pg_host(url))
    raise AssertionError(f"unknown backend {backend!r}")


def _pg_host(url: str) -> str | None:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname


@pytest.fixture
def make_cluster(
    tmp_path: Path, store_target: StoreTarget, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Cluster]]:
    """``make_cluster(["a", "b", "c"], interval=1, claim_ttl=5)`` → a :class:`Cluster`.

    This process becomes the cluster's operator: its CRONKIT_HOME is a home of its own
    configured for the same store, so ``cron.jobs`` / ``cron.executions`` act on the
    shared store. Every process a cluster started is ended at teardown, pass or fail.
    """
    made: list[Cluster] = []

    def make(names: list[str], **kwargs: Any) -> Cluster:
        cluster = Cluster(tmp_path / f"cluster{len(made)}", store_target, names, **kwargs)
        made.append(cluster)
        monkeypatch.setenv("CRONKIT_HOME", str(cluster.admin_home))
        monkeypatch.delenv("CRONKIT_STORE", raising=False)
        monkeypatch.setenv("TZ", "UTC")
        set_store(None)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.close()
        set_store(None)


@pytest.fixture(scope="session", autouse=True)
def _spawned_code_is_this_tree() -> None:
    """A gateway must run this worktree's ``cron``, not another checkout's."""
    import subprocess
    import sys

    from tests.cluster.harness import REPO

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    out = subprocess.run(
        [sys.executable, "-c", "import cron; print(cron.__file__)"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert Path(out).resolve().is_relative_to(REPO.resolve()), (out, REPO)
