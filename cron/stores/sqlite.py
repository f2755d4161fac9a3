"""A SQLite store: jobs, the run ledger and the webhook replay record in one database file.

``sqlite`` = ``<home>/cron/cronkit.db``; ``sqlite:///<absolute path>`` = that file.

Schema (version :data:`SCHEMA_VERSION`, recorded in ``cronkit_meta``)::

    jobs(id TEXT PRIMARY KEY, rev INTEGER, doc TEXT, wake_at TEXT, key TEXT UNIQUE, seq INTEGER)
        -- doc: the job as JSON; wake_at: cron.claim.wake_time (indexed, NULL = inactive)
    executions(...)            -- the ledger (cron.ledger_sql), same file
    webhook_nonces(...)        -- the replay record, same file (cron.webhook)

A swap is one conditional ``UPDATE jobs ... WHERE id = ? AND rev = ?`` whose
row count decides: 1 = won, 0 = lost. ``swap_many`` runs every swap and the
ledger rows of the winners in one ``BEGIN IMMEDIATE`` transaction, so a claim
and its ``claimed`` row commit together; ``swap_many_unless_replayed`` adds the
webhook's replay record to that transaction. WAL, ``busy_timeout``, one cached
connection per thread; SQLite serialises writers, which is exactly the
compare-and-set's need.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cron import ledger_sql, paths
from cron.claim import Job, wake_time
from cron.errors import DuplicateJobError, SchemaVersionError, StoreConfigError
from cron.ledger_sql import KEEP_PER_JOB, LedgerRow
from cron.ledgerdb import LedgerDB, SqlConn, SqliteLedger
from cron.sqlitewal import WalFile, is_busy
from cron.stores import JobStore, Replay, Stored, Swap

SCHEMA_VERSION = 1

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS cronkit_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    rev INTEGER NOT NULL,
    doc TEXT NOT NULL,
    wake_at TEXT,
    key TEXT UNIQUE,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_wake_at ON jobs(wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_seq ON jobs(seq);
INSERT OR IGNORE INTO cronkit_meta (name, value) VALUES ('jobs_version', '0');
"""
    + ledger_sql.SCHEMA
)

BUSY_TIMEOUT = 30.0


def _wake_text(job: Job, ttl: float) -> str | None:
    # Fixed-width UTC text sorts like the instant it names, so the index orders by time.
    t = wake_time(job, ttl)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if t is not None else None


def _due_text(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _from_wake_text(text: str) -> datetime:
    # fromisoformat reads the trailing Z (3.11+) at a tenth of strptime's cost.
    return datetime.fromisoformat(text)


@functools.lru_cache(maxsize=64)
def _home_db(cron_dir: Path) -> Path:
    # Resolved on every call (CRONKIT_HOME may change) and a claim asks ~10 times:
    # memoised, like cron.paths' own paths.
    return cron_dir / "cronkit.db"


def _encode(job: Job) -> str:
    return json.dumps(job, separators=(",", ":"))


class SqliteJobStore(JobStore):
    """Jobs as rows of one SQLite file (WAL); the ledger and replay record beside them."""

    def __init__(self, path: Path | None = None, *, synchronous: str = "NORMAL") -> None:
        if path is not None and not path.parent.is_dir():
            # An explicit file in a missing directory is a typo, not a place to create.
            raise StoreConfigError(
                f"sqlite://{path}", f"the directory {str(path.parent)!r} does not exist"
            )
        self._explicit = path
        # WAL + NORMAL: a commit survives any crash of this process or another (what
        # at-most-once needs); a power cut may lose the newest commits, never corrupt the
        # file. FULL would fsync every claim (several ms on a VM disk).
        self._synchronous = synchronous
        self._wal = WalFile(self._path, _SCHEMA, synchronous=synchronous, timeout=BUSY_TIMEOUT)
        self._checked: set[str] = set()
        self._lock = threading.Lock()

    def _path(self) -> Path:
        return self._explicit if self._explicit is not None else _home_db(paths.cron_dir())

    @property
    def path(self) -> Path:
        return self._path()

    @property
    def url(self) -> str:
        return "sqlite" if self._explicit is None else f"sqlite://{self._explicit}"

    def ledger(self) -> LedgerDB:
        # The same file: swap_many writes a claim's ledger row in the claim's transaction.
        if self._ledger is None:
            self._ledger = SqliteLedger(
                self._path, _SCHEMA, synchronous=self._synchronous, migrate=ledger_sql.migrate
            )
        return self._ledger

    def replay_db(self) -> LedgerDB:
        # The same file again, but FULL: a replay inside max_skew after a power cut
        # must still be refused (the claim is the real guard; this is the first).
        if self._replay is None:
            self._replay = SqliteLedger(self._path, _SCHEMA, synchronous="FULL")
        return self._replay

    # -- connections and schema ------------------------------------------------------

    @contextlib.contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        try:
            with self._wal.connect() as conn:
                self._check_schema(conn)
                yield conn
        except sqlite3.DatabaseError as exc:
            if is_busy(exc):
                raise
            raise StoreConfigError(self.url, f"cannot use the database: {exc}") from None
        except OSError as exc:
            raise StoreConfigError(self.url, f"cannot open the database: {exc}") from None

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        key = str(self._path())
        if key in self._checked:
            return
        row = conn.execute(
            "SELECT value FROM cronkit_meta WHERE name = 'schema_version'"
        ).fetchone()
        if row is None:
            conn.execute(
                "INSERT OR IGNORE INTO cronkit_meta (name, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            found = SCHEMA_VERSION
        else:
            found = int(row[0])
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(self.url, found, SCHEMA_VERSION)
        with self._lock:
            self._checked.add(key)

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection | None]:
        """A connection for a read, or None while the file does not exist: a read
        never creates the database (bad input writes nothing, SPEC §8)."""
        if not os.path.exists(self._path()):
            yield None
            return
        with self._conn() as conn:
            yield conn

    def _ensure_checked(self) -> None:
        # The schema check (and its error mapping) once per file and process; after
        # that a write goes straight to its transaction.
        if str(self._path()) not in self._checked:
            with self._conn():
                pass

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._ensure_checked()
        try:
            with self._wal.transaction() as conn:
                yield conn
        except sqlite3.DatabaseError as exc:
            if is_busy(exc):
                raise
            raise StoreConfigError(self.url, f"cannot use the database: {exc}") from None

    # -- reads -----------------------------------------------------------------------

    def get(self, job_id: str) -> Stored | None:
        with self._read() as conn:
            if conn is None:
                return None
            row = conn.execute("SELECT doc, rev FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Stored(json.loads(row[0]), row[1]) if row is not None else None

    def scan(self, *, due_by: datetime | None = None, limit: int | None = None) -> list[Stored]:
        lim = -1 if limit is None else max(int(limit), 0)
        with self._read() as conn:
            if conn is None:
                return []
            if due_by is None:
                rows = conn.execute(
                    "SELECT doc, rev FROM jobs ORDER BY seq LIMIT ?", (lim,)
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT doc, rev FROM jobs WHERE wake_at IS NOT NULL AND wake_at <= ? "
                    "ORDER BY wake_at, id LIMIT ?",
                    (_due_text(due_by), lim),
                ).fetchall()
        return [Stored(json.loads(doc), rev) for doc, rev in rows]

    def next_wake(self) -> datetime | None:
        with self._read() as conn:
            if conn is None:
                return None
            row = conn.execute(
                "SELECT wake_at FROM jobs WHERE wake_at IS NOT NULL ORDER BY wake_at LIMIT 1"
            ).fetchone()
        return _from_wake_text(row[0]) if row is not None else None

    def version(self) -> object | None:
        # A counter every job write bumps in its own transaction — not PRAGMA
        # data_version, which also moves on ledger and registry writes: tickers
        # sharing the file would wake each other with every heartbeat, forever.
        with self._read() as conn:
            if conn is None:
                return (str(self._path()), None)
            row = conn.execute(
                "SELECT value FROM cronkit_meta WHERE name = 'jobs_version'"
            ).fetchone()
            return (str(self._path()), row[0] if row is not None else None)

    def count(self) -> int:
        with self._read() as conn:
            if conn is None:
                return 0
            (n,) = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()
        return int(n)

    def find_key(self, key: str) -> Stored | None:
        with self._read() as conn:
            if conn is None:
                return None
            row = conn.execute("SELECT doc, rev FROM jobs WHERE key = ?", (key,)).fetchone()
        return Stored(json.loads(row[0]), row[1]) if row is not None else None

    def info(self) -> dict[str, Any]:
        return {
            "backend": "sqlite",
            "url": self.url,
            "location": str(self._path()),
            "schema_version": SCHEMA_VERSION,
            "jobs": self.count(),
        }

    # -- writes ----------------------------------------------------------------------

    def _insert_in(self, conn: sqlite3.Connection, job: Job) -> Stored:
        key = job.get("key")
        if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job["id"],)).fetchone():
            raise DuplicateJobError("id", job["id"])
        if key is not None and conn.execute("SELECT 1 FROM jobs WHERE key = ?", (key,)).fetchone():
            raise DuplicateJobError("key", str(key))
        doc = _encode(job)
        conn.execute(
            "INSERT INTO jobs (id, rev, doc, wake_at, key, seq) VALUES "
            "(?, 1, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs))",
            (job["id"], doc, _wake_text(job, self.claim_ttl), key),
        )
        return Stored(json.loads(doc), 1)

    @staticmethod
    def _bump(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE cronkit_meta SET value = CAST(value AS INTEGER) + 1 WHERE name = 'jobs_version'"
        )

    def insert(self, job: Job) -> Stored:
        with self._write() as conn:
            out = self._insert_in(conn, job)
            self._bump(conn)
            return out

    def insert_many(self, jobs: Sequence[Job]) -> list[Stored]:
        out: list[Stored] = []
        failed: DuplicateJobError | None = None
        with self._write() as conn:
            for job in jobs:
                try:
                    out.append(self._insert_in(conn, job))
                except DuplicateJobError as exc:
                    failed = exc  # the jobs before it are kept (JobStore.insert_many)
                    break
            if out:
                self._bump(conn)
        if failed is not None:
            raise failed
        return out

    def _swap_in(
        self, conn: sqlite3.Connection, job_id: str, rev: object, new: Job, ttl: float
    ) -> Stored | None:
        if new.get("id") != job_id:
            raise ValueError(f"swap of job {job_id!r} got a job with id {new.get('id')!r}")
        if not isinstance(rev, int) or isinstance(rev, bool):
            return None  # not a revision this store hands out (True would bind as 1)
        doc = _encode(new)
        row = conn.execute(
            "UPDATE jobs SET doc = ?, wake_at = ?, key = ?, rev = rev + 1 "
            "WHERE id = ? AND rev = ? RETURNING rev",
            (doc, _wake_text(new, ttl), new.get("key"), job_id, rev),
        ).fetchone()
        return Stored(new, row[0]) if row is not None else None

    def swap(self, job_id: str, rev: object, new: Job) -> Stored | None:
        with self._write() as conn:
            won = self._swap_in(conn, job_id, rev, new, self.claim_ttl)
            if won is not None:
                self._bump(conn)
            return won

    def _swaps_in(
        self, conn: sqlite3.Connection, swaps: Sequence[Swap], ttl: float
    ) -> list[Stored | None]:
        """The body of :meth:`swap_many`, inside the caller's transaction."""
        out: list[Stored | None] = []
        rows: list[LedgerRow] = []
        for item in swaps:
            won = self._swap_in(conn, item.job_id, item.rev, item.new, ttl)
            if won is not None:
                rows.extend(item.rows)
            out.append(won)
        if rows:
            # Same transaction: a won claim without its ledger row cannot exist.
            ledger_sql.insert_rows(conn, rows, KEEP_PER_JOB)
        if any(o is not None for o in out):
            self._bump(conn)
        return out

    def swap_many(self, swaps: Sequence[Swap]) -> list[Stored | None]:
        if not swaps:
            return []
        ttl = self.claim_ttl
        with self._write() as conn:
            return self._swaps_in(conn, swaps, ttl)

    def swap_many_unless_replayed(
        self, replay: Replay, swaps: Sequence[Swap]
    ) -> list[Stored | None] | None:
        # ONE transaction for the signature, the swaps and their ledger rows, on the
        # replay record's FULL connection (its fsync makes the claim durable too), shared
        # with concurrent requests of this process: a burst of fires costs one fsync.
        ttl = self.claim_ttl
        self._ensure_checked()

        def write(conn: SqlConn) -> list[Stored | None] | None:
            assert isinstance(conn, sqlite3.Connection)
            if not ledger_sql.remember_nonce(conn, replay.digest, at=replay.at, ttl=replay.ttl):
                return None
            return self._swaps_in(conn, swaps, ttl)

        try:
            return self.replay_db().transact(write)
        except sqlite3.DatabaseError as exc:
            if is_busy(exc):
                raise
            raise StoreConfigError(self.url, f"cannot use the database: {exc}") from None

    def write_rows(self, rows: list[LedgerRow]) -> None:
        with self._write() as conn:
            ledger_sql.insert_rows(conn, rows, KEEP_PER_JOB)

    def delete(self, job_id: str, rev: object | None = None) -> bool:
        with self._write() as conn:
            if rev is None:
                cur = conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            else:
                cur = conn.execute("DELETE FROM jobs WHERE id = ? AND rev = ?", (job_id, rev))
            if cur.rowcount == 1:
                self._bump(conn)
                return True
            return False

    def close(self) -> None:
        self._wal.close_thread_connections()
        super().close()
