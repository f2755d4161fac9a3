"""Editing and reading the configured store behind the job API's back (seeding, tampering).

Tests reach under ``cron.jobs`` to build states the API would never produce on
its own (a claim dated in the future, a spent job). They do it through the
store seam, so the same seeding works on every backend.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cron import paths
from cron.store import get_store
from cron.stores.json import JsonJobStore
from cron.stores.sqlite import SqliteJobStore

Job = dict[str, Any]


def edit_job(job_id: str, fn: Callable[[Job], None]) -> Job:
    """Apply ``fn`` to the stored job and write it back (compare-and-set, retried)."""
    store = get_store()
    for _ in range(100):
        stored = store.get(job_id)
        assert stored is not None, f"no job {job_id!r} to edit"
        fn(stored.job)
        if store.swap(job_id, stored.rev, stored.job) is not None:
            return stored.job
    raise AssertionError(f"could not edit job {job_id!r}: every swap lost")


def all_jobs() -> list[Job]:
    """Every stored job, in creation order."""
    return [s.job for s in get_store().scan()]


def by_id() -> dict[str, Job]:
    return {j["id"]: j for j in all_jobs()}


# -- the store's own state, read without the store (what is on disk) -----------------------------


def backend() -> str:
    """``json``, ``sqlite`` or ``postgres``: the kind of the configured store."""
    store = get_store()
    if isinstance(store, JsonJobStore):
        return "json"
    if isinstance(store, SqliteJobStore):
        return "sqlite"
    if type(store).__name__ == "PostgresJobStore":  # no psycopg import for the file stores
        return "postgres"
    raise AssertionError(f"no test helper reads a {type(store).__name__}")


def is_json() -> bool:
    return backend() == "json"


def store_file() -> Path:
    """The file the configured store keeps its jobs in (a file store's: a test that asks
    is about that file)."""
    store = get_store()
    assert isinstance(store, JsonJobStore | SqliteJobStore), (
        f"{type(store).__name__} keeps no file; a test about the store's file pins its "
        "store (fixture json_store / file_store)"
    )
    return store.path


def store_exists() -> bool:
    """Has the configured store been created (``jobs.json`` / ``cronkit.db`` on disk; on
    PostgreSQL its schema in the database: a store's first write creates it)?"""
    if backend() == "postgres":
        return _pg_schema_exists()
    return store_file().exists()


def builtin_store_files() -> list[Path]:
    """Where the built-in stores keep jobs under this home, whichever one is configured
    (for a test whose config cannot be read)."""
    return [paths.jobs_path(), paths.cron_dir() / "cronkit.db"]


def _sqlite_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    # Plain sqlite3, read-only: never through the store, never creating the file.
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def _pg_url() -> str:
    """The configured PostgreSQL store's URL, password included (``store.url`` masks it)."""
    from cron.store import configured_url
    from cron.urls import mask_url

    store = get_store()
    url = configured_url()
    return url if mask_url(url) == store.url else store.url


_direct: dict[tuple[int, str], Any] = {}  # (pid, url) -> the helpers' direct connection


def _pg_conn() -> Any:
    import psycopg

    url = _pg_url()
    conn = _direct.get((os.getpid(), url))  # never a connection inherited over fork
    if conn is None or conn.closed or conn.broken:
        close_direct()
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        _direct[(os.getpid(), url)] = conn
    return conn


def close_direct() -> None:
    """Close the helpers' direct connection (before the test's database goes)."""
    for (pid, _url), conn in list(_direct.items()):
        if pid == os.getpid():
            with contextlib.suppress(Exception):
                conn.close()
    _direct.clear()


def _pg_rows(*queries: str) -> list[list[tuple[Any, ...]]] | None:
    """Each query's rows, or None while the database holds no cronkit schema. A direct
    psycopg connection (autocommit: each query sees every commit), never the store's
    pool: what the database holds."""
    conn = _pg_conn()
    found = conn.execute("SELECT to_regclass('cronkit_meta') IS NOT NULL").fetchone()
    if found is None or not found[0]:
        return None
    return [[tuple(r) for r in conn.execute(q).fetchall()] for q in queries]


def _pg_schema_exists() -> bool:
    return _pg_rows() is not None


def disk_jobs() -> list[Job] | None:
    """Every job as stored on disk, in creation order; None if the store does not exist.

    json: the parsed ``jobs.json`` (its envelope checked); sqlite: the ``doc`` column;
    postgres: the ``doc`` column of ``cronkit_jobs``.
    """
    if backend() == "postgres":
        found = _pg_rows("SELECT doc FROM cronkit_jobs ORDER BY seq")
        return None if found is None else [json.loads(doc) for (doc,) in found[0]]
    path = store_file()
    if not path.exists():
        return None
    if is_json():
        doc = json.loads(path.read_bytes())
        assert set(doc) == {"version", "jobs", "updated_at"} and doc["version"] == 1, doc.keys()
        return list(doc["jobs"])
    return [json.loads(doc) for (doc,) in _sqlite_rows(path, "SELECT doc FROM jobs ORDER BY seq")]


def snapshot() -> object:
    """A comparable value that changes iff the store wrote anything.

    json: the bytes of ``jobs.json`` (None if absent). sqlite: every ``jobs`` row
    (id, rev, doc) and every ``executions`` row — the ledger lives in the same
    database, and a write that touches neither changed nothing. postgres: the
    same of ``cronkit_jobs`` and ``executions`` (None while there is no schema).
    """
    if backend() == "postgres":
        found = _pg_rows(
            "SELECT id, rev, doc FROM cronkit_jobs ORDER BY id",
            "SELECT * FROM executions ORDER BY id",
        )
        return None if found is None else tuple(found)
    path = store_file()
    if is_json():
        return path.read_bytes() if path.exists() else None
    if not path.exists():
        return None
    return (
        _sqlite_rows(path, "SELECT id, rev, doc FROM jobs ORDER BY id"),
        _sqlite_rows(path, "SELECT * FROM executions ORDER BY id"),
    )


def drop_json_ledger() -> None:
    """Remove ``executions.db`` beside ``jobs.json`` (and its WAL files): creating a job
    writes its ``create`` event there, so a test about a home *without* a ledger builds
    that state explicitly. On SQLite and PostgreSQL the ledger is the store's own
    database: nothing to do."""
    if not is_json():
        return
    from cron.store import get_store

    get_store().ledger().close()
    base = paths.executions_path()
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{base}{suffix}").unlink()
