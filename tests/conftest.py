"""Shared fixtures: an isolated CRONKIT_HOME per test and Hypothesis profiles.

``HYPOTHESIS_PROFILE`` picks the profile: ``ci`` (default; derandomized and
bounded so the whole suite fits the CI budget), ``dev`` and ``nightly``.

``CRONKIT_TEST_STORE=postgres`` runs every test on the PostgreSQL store: each
``home`` gets a fresh database of the session's throwaway server as its
``CRONKIT_STORE`` (``tests/support/suite.py``). Unset, the store is whatever
``CRONKIT_STORE`` names (``json`` by default, ``sqlite`` in tox's sqlite env).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import freezegun
import pytest
from hypothesis import HealthCheck, settings

from tests.support import suite

if TYPE_CHECKING:
    from cron.testing.postgres import PostgresServer

# freezegun moves this process's clock in every thread. The database driver's own
# timeouts (connect, pool waits) and the suite's database thread must keep real time:
# a scenario jumping its frozen clock by hours would expire them at once.
freezegun.configure(extend_ignore_list=["psycopg", "psycopg_pool", "tests.support.suite"])

settings.register_profile(
    "ci",
    max_examples=60,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "nightly",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    try:
        suite.suite_store()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture(scope="session", autouse=True)
def suite_databases(request: pytest.FixtureRequest) -> Iterator[suite.Databases | None]:
    """On ``CRONKIT_TEST_STORE=postgres``: the fresh databases tests and examples draw from.

    Asks for ``pg_server`` only then, so a json or sqlite run never starts a server.
    """
    if not suite.on_postgres():
        yield None
        return
    databases = suite.Databases(request.getfixturevalue("pg_server"))
    suite.install(databases)
    try:
        yield databases
    finally:
        suite.install(None)
        databases.close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, private CRONKIT_HOME; the config pins UTC unless a test writes its own.

    On ``CRONKIT_TEST_STORE=postgres`` its store is a fresh database (``CRONKIT_STORE``,
    inherited by child processes), closed and dropped after the test.
    """
    h = tmp_path / "cronkit-home"
    monkeypatch.setenv("CRONKIT_HOME", str(h))
    monkeypatch.setenv("TZ", "UTC")
    if not suite.on_postgres():
        yield h
        return
    with suite.fresh_database() as url:
        monkeypatch.setenv("CRONKIT_STORE", url)
        yield h


def write_config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(text, encoding="utf-8")


def install_plugin(home: Path, name: str, source: str) -> None:
    """Write a user plugin ``<home>/plugins/<name>/__init__.py`` (SPEC §6)."""
    d = home / "plugins" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "__init__.py").write_text(textwrap.dedent(source), encoding="utf-8")


@pytest.fixture
def json_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the ``jobs.json`` store for a test that is about that file, whatever
    ``CRONKIT_STORE`` the suite runs with (child processes inherit it)."""
    _pin_store(request, monkeypatch, "json")


@pytest.fixture
def file_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """For a test about what only a store in the home's files has (its SQLite ledger file,
    ``executions.db`` or ``cronkit.db``; being unshared): the configured store if it is a
    file store (json, sqlite), else the SQLite store."""
    from cron.store import configured_url
    from cron.stores import scheme_of

    if "home" in request.fixturenames:
        request.getfixturevalue("home")
    if scheme_of(configured_url()) not in ("json", "sqlite"):
        _pin_store(request, monkeypatch, "sqlite")


def _pin_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    from cron.store import set_store

    if "home" in request.fixturenames:
        request.getfixturevalue("home")  # set up first: on postgres it sets CRONKIT_STORE
    monkeypatch.setenv("CRONKIT_STORE", url)
    # A pinned test is out of the suite's store mode, Hypothesis examples included.
    monkeypatch.delenv(suite.SUITE_ENV, raising=False)
    set_store(None)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session (``cron.testing.postgres``), or the
    server of ``CRONKIT_TEST_POSTGRES_DSN``. Never skipped: if it cannot start, every
    test that needs it errors with the reason."""
    from cron.testing.postgres import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh database holding the cronkit schema, dropped after the test."""
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)
