"""SPEC §10: ``cron.store`` / ``$CRONKIT_STORE`` pick the store by URL; nothing falls back.

An unknown scheme, a malformed URL or a database that cannot be used is an
error naming the store with its password masked — never a silent switch to
``jobs.json``, which would split the jobs in two.
"""

from __future__ import annotations

import sqlite3
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from cron import jobs
from cron.errors import SchemaVersionError, StoreConfigError
from cron.store import get_store, set_store
from cron.stores import JobStore, mask_url, open_store, scheme_of
from cron.stores.json import JsonJobStore
from cron.stores.sqlite import SCHEMA_VERSION, SqliteJobStore
from tests.conftest import write_config


@pytest.fixture(autouse=True)
def _fresh(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CRONKIT_STORE", raising=False)
    set_store(None)
    yield
    set_store(None)


@pytest.mark.parametrize(
    ("url", "kind"),
    [("", JsonJobStore), ("json", JsonJobStore), ("sqlite", SqliteJobStore)],
)
def test_the_url_table(url: str, kind: type[JobStore]) -> None:
    assert isinstance(open_store(url), kind)


def test_sqlite_with_an_absolute_path(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/x.db")  # tmp_path is absolute: three slashes
    assert isinstance(store, SqliteJobStore)
    assert store.path == tmp_path / "x.db"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("bogus", "expected 'json', 'sqlite'"),
        ("nosuch://host/db", "unknown store scheme 'nosuch'"),
        ("sqlite://relative/x.db", "three slashes"),
        ("sqlite:///no/such/dir/x.db", "does not exist"),
    ],
)
def test_a_bad_url_is_one_clear_error_and_writes_nothing(home: Path, url: str, says: str) -> None:
    with pytest.raises(StoreConfigError) as info:
        open_store(url).count()
    assert says in str(info.value)
    assert "\n" not in str(info.value)
    assert not home.exists()


def test_the_password_never_appears_in_an_error() -> None:
    with pytest.raises(StoreConfigError) as info:
        open_store("nosuch://alice:s3cret@db.example/jobs")
    assert "s3cret" not in str(info.value)
    assert "alice:***@db.example" in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        (
            "postgresql://h/db?password=pw&sslmode=require",
            "postgresql://h/db?password=***&sslmode=require",
        ),
        ("sqlite:///var/lib/cronkit.db", "sqlite:///var/lib/cronkit.db"),
        ("postgres://u@h/db", "postgres://u@h/db"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_postgres_is_an_alias_of_postgresql() -> None:
    assert scheme_of("postgres://h/db") == "postgresql"


def test_env_wins_over_config(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(home, "cron:\n  store: json\n")
    monkeypatch.setenv("CRONKIT_STORE", "sqlite")
    assert isinstance(get_store(), SqliteJobStore)
    monkeypatch.delenv("CRONKIT_STORE")
    assert isinstance(get_store(), JsonJobStore)


def test_a_configured_store_that_cannot_open_is_an_error_not_json(home: Path) -> None:
    write_config(home, "cron:\n  store: 'nosuch://x'\n")
    with pytest.raises(StoreConfigError):
        jobs.create_job("every 1h", "true")
    assert not (home / "cron" / "jobs.json").exists()


def test_a_newer_schema_is_refused_naming_both_versions(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    SqliteJobStore(path).delete("nothing")  # the first write creates the schema and its version
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE cronkit_meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(SchemaVersionError) as info:
        SqliteJobStore(path).count()
    assert f"schema version 99 is newer than this cronkit supports ({SCHEMA_VERSION})" in str(
        info.value
    )


def test_the_schema_version_is_recorded_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = SqliteJobStore(path)
    assert not store.delete("nothing")  # first use: a write
    assert store.info()["schema_version"] == SCHEMA_VERSION
    with sqlite3.connect(path) as conn:
        (value,) = conn.execute(
            "SELECT value FROM cronkit_meta WHERE name = 'schema_version'"
        ).fetchone()
    assert int(value) == SCHEMA_VERSION


def test_a_third_party_store_is_found_by_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fake installed distribution, as zarr tests its codec entry points.
    pkg = tmp_path / "site"
    (pkg / "memstore_pkg").mkdir(parents=True)
    (pkg / "memstore_pkg" / "__init__.py").write_text(
        textwrap.dedent("""
        from cron.stores.sqlite import SqliteJobStore

        class MemStore(SqliteJobStore):
            def __init__(self, url):
                super().__init__()
                self.seen_url = url
    """)
    )
    dist = pkg / "memstore_pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Name: memstore-pkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[cronkit.stores]\nmem = memstore_pkg:MemStore\n")
    monkeypatch.syspath_prepend(str(pkg))
    import cron.stores as registry

    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    store = open_store("mem://anything")
    assert type(store).__name__ == "MemStore"
    assert store.seen_url == "mem://anything"  # type: ignore[attr-defined]
    sys.modules.pop("memstore_pkg", None)


def test_a_plugin_that_is_not_a_store_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "site"
    (pkg / "notastore").mkdir(parents=True)
    (pkg / "notastore" / "__init__.py").write_text(
        "class Nope:\n    def __init__(self, url):\n        pass\n"
    )
    dist = pkg / "notastore-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Name: notastore\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[cronkit.stores]\nnope = notastore:Nope\n")
    monkeypatch.syspath_prepend(str(pkg))
    import cron.stores as registry

    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    with pytest.raises(StoreConfigError, match="did not make a cron.stores.JobStore"):
        open_store("nope://x")
    sys.modules.pop("notastore", None)
