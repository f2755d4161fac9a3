"""``jobs.json`` is read the same whichever way it is laid out.

A file in the exact shape the store writes is decoded one job at a time (no parsed
copy of the whole store is ever held); any other layout is parsed whole. Both must
give the same jobs, revisions, due index and key lookups, and a broken file in the
store's own shape is still refused with :class:`StoreCorruptError`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cron import jobs
from cron.errors import StoreCorruptError
from cron.store import get_store
from cron.stores.json import JsonJobStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _seed(json_store: None) -> JsonJobStore:
    jobs.create_job("every 1h", "true", name="a", now=T0 - timedelta(hours=2))
    jobs.create_job("every 1d", "true", name="b", now=T0)
    jobs.create_job("every 1h", "true", name="c", key="declared-c", now=T0)
    jobs.pause_job(jobs.list_jobs()[1]["id"])
    store = get_store()
    assert isinstance(store, JsonJobStore)
    return store


def _view(store: JsonJobStore) -> tuple[object, ...]:
    fresh = JsonJobStore(store.path)  # no cache: reads the file as it is now
    return (
        [(s.job, s.rev) for s in fresh.scan()],
        [s.job["id"] for s in fresh.scan(due_by=T0)],
        fresh.next_wake(),
        fresh.find_key("declared-c"),
        fresh.count(),
    )


def test_the_stores_own_layout_and_any_other_read_the_same(home: Path, json_store: None) -> None:
    store = _seed(json_store)
    own = _view(store)
    parses: list[str] = []
    original = JsonJobStore._parse_full

    def counting(self: JsonJobStore, data: bytes) -> list[dict[str, object]]:
        parses.append("full")
        return original(self, data)

    JsonJobStore._parse_full = counting  # type: ignore[method-assign]
    try:
        assert _view(store) == own
        assert parses == []  # the store's own file: decoded job by job
        doc = json.loads(store.path.read_bytes())
        store.path.write_text(json.dumps(doc, indent=2))  # another layout, same key order
        assert _view(store) == own
        assert parses == ["full"]
    finally:
        JsonJobStore._parse_full = original  # type: ignore[method-assign]
    assert len(own[0]) == 3  # type: ignore[arg-type]
    assert own[3] is not None


@pytest.mark.parametrize("cut", [1, 40, -60, -3])
def test_a_truncated_file_in_the_stores_layout_is_corrupt(
    home: Path, json_store: None, cut: int
) -> None:
    store = _seed(json_store)
    data = store.path.read_bytes()
    store.path.write_bytes(data[:cut] if cut > 0 else data[: len(data) + cut])
    with pytest.raises(StoreCorruptError):
        JsonJobStore(store.path).scan()


def test_a_job_without_an_id_in_the_stores_layout_is_corrupt(home: Path, json_store: None) -> None:
    store = _seed(json_store)
    data = store.path.read_bytes().replace(b'"id":', b'"di":', 1)
    store.path.write_bytes(data)
    with pytest.raises(StoreCorruptError, match="'id'"):
        JsonJobStore(store.path).scan()
