"""Shared fixtures: an isolated CRONKIT_HOME per test and Hypothesis profiles.

``HYPOTHESIS_PROFILE`` picks the profile: ``ci`` (default; derandomized and
bounded so the whole suite fits the CI budget), ``dev`` and ``nightly``.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from cron.testing.postgres import PostgresServer

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


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, private CRONKIT_HOME; the config pins UTC unless a test writes its own."""
    h = tmp_path / "cronkit-home"
    monkeypatch.setenv("CRONKIT_HOME", str(h))
    monkeypatch.setenv("TZ", "UTC")
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
def json_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the ``jobs.json`` store for a test that is about that file, whatever
    ``CRONKIT_STORE`` the suite runs with (child processes inherit it)."""
    from cron.store import set_store

    monkeypatch.setenv("CRONKIT_STORE", "json")
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
