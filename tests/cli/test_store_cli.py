"""``cronkit store info`` and ``cronkit store copy URL`` (SPEC §10)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cron import jobs
from cron.store import set_store
from cron.stores.sqlite import SqliteJobStore
from tests.cli._helpers import cli, snapshot, stderr_lines


@pytest.fixture(autouse=True)
def _json_source(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The source of every copy here is the embedded JSON store.
    monkeypatch.setenv("CRONKIT_STORE", "json")
    set_store(None)
    yield
    set_store(None)


def test_info_names_backend_location_schema_and_count(home: Path) -> None:
    jobs.create_job("every 1h", "true", name="a")
    result = cli("store", "info", "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info == {
        "backend": "json",
        "url": "json",
        "location": str(home / "cron" / "jobs.json"),
        "schema_version": 1,
        "jobs": 1,
    }


def test_copy_keeps_ids_and_state_and_leaves_the_source_alone(home: Path, tmp_path: Path) -> None:
    a = jobs.create_job("every 1h", "true", name="a")
    b = jobs.create_job("0 9 * * *", "echo hi", name="b")
    jobs.pause_job(b["id"], reason="maintenance")
    source = jobs.list_jobs()
    before = (home / "cron" / "jobs.json").read_bytes()
    target = tmp_path / "copy.db"
    result = cli("store", "copy", f"sqlite://{target}")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"copied 2 job(s) from json to sqlite://{target}"
    assert (home / "cron" / "jobs.json").read_bytes() == before
    copied = [s.job for s in SqliteJobStore(target).scan()]
    assert copied == source
    assert {j["id"] for j in copied} == {a["id"], b["id"]}


def test_copy_refuses_a_target_that_holds_jobs(home: Path, tmp_path: Path) -> None:
    jobs.create_job("every 1h", "true", name="a")
    target = tmp_path / "copy.db"
    assert cli("store", "copy", f"sqlite://{target}").exit_code == 0
    before = snapshot(tmp_path)
    again = cli("store", "copy", f"sqlite://{target}")
    assert again.exit_code == 2
    assert stderr_lines(again) == [
        f"cronkit: error: job store 'sqlite://{target}': already holds 1 job(s); "
        "copy only into an empty store"
    ]
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("nosuch://alice:s3cret@db/x", "job store 'nosuch://alice:***@db/x': unknown store scheme"),
        ("sqlite:///no/such/dir/x.db", "the directory '/no/such/dir' does not exist"),
    ],
)
def test_a_bad_target_is_one_line_exit_2_and_nothing_written(
    home: Path, url: str, says: str
) -> None:
    jobs.create_job("every 1h", "true", name="a")
    before = snapshot(home)
    result = cli("store", "copy", url)
    assert result.exit_code == 2
    lines = stderr_lines(result)
    assert len(lines) == 1 and says in lines[0], lines
    assert "s3cret" not in result.stderr
    assert snapshot(home) == before


def test_a_bad_configured_store_fails_every_verb_naming_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRONKIT_STORE", "nosuch://bob:pw@h/db")
    set_store(None)
    result = cli("list")
    assert result.exit_code == 2
    assert stderr_lines(result) == [
        "cronkit: error: job store 'nosuch://bob:***@h/db': unknown store scheme 'nosuch' "
        "(known: json, postgres, postgresql, sqlite)"
    ]
    assert not (home / "cron" / "jobs.json").exists()
