"""The store contract (``cron.testing.store.StoreContract``) on every built-in backend.

Each file backend runs twice: at its default place under ``CRONKIT_HOME`` (URL
``json`` / ``sqlite``) and at an explicit file (``json:<path>`` /
``sqlite:///<path>``), so the URL a store reports opens that same store in
another process. PostgreSQL runs on a real server (the ``pg_url`` fixture: a
fresh database per test), its process races included.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cron.stores import JobStore
from cron.stores.json import JsonJobStore
from cron.stores.sqlite import SqliteJobStore
from cron.testing.store import StoreContract


class TestJsonStoreContract(StoreContract):
    @pytest.fixture(params=["at-home", "at-path"])
    def store(self, request: pytest.FixtureRequest, home: Path) -> Iterator[JobStore]:
        path = None if request.param == "at-home" else home / "elsewhere" / "jobs.json"
        s = JsonJobStore(path)
        yield s
        s.close()


class TestSqliteStoreContract(StoreContract):
    @pytest.fixture(params=["at-home", "at-path"])
    def store(self, request: pytest.FixtureRequest, home: Path) -> Iterator[JobStore]:
        path = None if request.param == "at-home" else home / "elsewhere" / "cronkit.db"
        if path is not None:
            path.parent.mkdir(parents=True)  # an explicit SQLite path names an existing dir
        s = SqliteJobStore(path)
        yield s
        s.close()


class TestPostgresStoreContract(StoreContract):
    @pytest.fixture
    def store(self, home: Path, pg_url: str) -> Iterator[JobStore]:
        from cron.stores.postgres import PostgresJobStore

        s = PostgresJobStore(pg_url)
        yield s
        s.close()
