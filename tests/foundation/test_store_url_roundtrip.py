"""SPEC §10: a store URL opens exactly the store it names, never a fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from cron.errors import StoreConfigError
from cron.stores import open_store
from cron.stores.json import JsonJobStore
from cron.stores.sqlite import SqliteJobStore


def test_a_json_store_at_a_path_reopens_from_its_url(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "jobs.json"
    reopened = open_store(JsonJobStore(path).url)
    assert isinstance(reopened, JsonJobStore)
    assert reopened.path == path, "json:<path> opened another file"


def test_a_sqlite_store_at_a_path_reopens_from_its_url(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "cronkit.db"
    path.parent.mkdir()  # an explicit SQLite path must name an existing directory
    reopened = open_store(SqliteJobStore(path).url)
    assert isinstance(reopened, SqliteJobStore)
    assert reopened.path == path


@pytest.mark.parametrize("url", ["json:relative/jobs.json", "sqlite://host/x.db", "nosuch:x"])
def test_a_url_that_names_no_store_is_an_error_naming_it(home: Path, url: str) -> None:
    with pytest.raises(StoreConfigError, match="nosuch|relative|host"):
        open_store(url)
