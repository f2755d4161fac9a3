"""The run ledger's schema and the writes a store makes inside its own transaction.

Shared by :mod:`cron.executions` (the ledger API) and the database stores,
whose database holds the ledger beside the jobs so that a claim and its
``claimed`` row commit together (SPEC §10). The statements are the portable
SQL :mod:`cron.ledgerdb` describes; :data:`SCHEMA` is SQLite's DDL (a
PostgreSQL store has its own, with the same tables and columns).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cron.ledgerdb import SqlConn


@dataclass(frozen=True)
class LedgerRow:
    """A ledger row that must exist iff the store swap it rides on wins (SPEC §10).

    ``status`` is ``claimed`` (a fired run; ``id`` = its claim token) or an
    event status (``missed`` / ``skipped``) recorded for a slot not run.
    """

    id: str
    job_id: str
    status: str
    scheduled_at: str | None
    at: str
    source: str
    owner: str | None
    job_name: str | None = None
    error: str | None = None
    attempt: int = 1
    """Which attempt at its slot this row is (SPEC §13: retries get 2, 3, ...)."""


KEEP_PER_JOB = 1000
"""Default bound on ledger rows kept per job; older rows are pruned on write."""

# ``pgid`` / ``pgid_start``: a command run's process group and its leader's
# start time (cron.procgroup), so recovery can end a group its dead owner left
# running. ``attempt``: 1 for a slot's first run, 2, 3 ... for its retries.
# Neither is in COLUMNS: the rows callers list keep their shape (ATTEMPT_COLUMNS adds it).
COLUMNS = (
    "id",
    "job_id",
    "job_name",
    "scheduled_at",
    "claimed_at",
    "started_at",
    "finished_at",
    "status",
    "source",
    "owner",
    "error",
    "output_path",
)

ATTEMPT_COLUMNS = (*COLUMNS, "attempt")

SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    job_name TEXT,
    scheduled_at TEXT,
    claimed_at TEXT,
    started_at TEXT,
    finished_at TEXT,
    status TEXT NOT NULL,
    source TEXT,
    owner TEXT,
    error TEXT,
    output_path TEXT,
    pgid INTEGER,
    pgid_start TEXT,
    attempt INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS executions_job_id ON executions(job_id);
CREATE INDEX IF NOT EXISTS executions_status ON executions(status);
CREATE TABLE IF NOT EXISTS job_events (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    schedule TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS job_events_job ON job_events(job_id, id);
CREATE TABLE IF NOT EXISTS tickers (
    node_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    process_start TEXT,
    home TEXT,
    provider TEXT,
    state TEXT NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    success_at TEXT,
    last_error TEXT
);
"""

NONCE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS webhook_nonces "
    "(signature TEXT PRIMARY KEY, expires_at REAL NOT NULL);"
)
"""The webhook's replay record (SPEC §7); part of :data:`SCHEMA`'s database on a database store."""

SCHEMA += NONCE_SCHEMA + "\n"

_ADDED_COLUMNS = (
    ("pgid", "INTEGER"),
    ("pgid_start", "TEXT"),
    ("attempt", "INTEGER NOT NULL DEFAULT 1"),
)


def migrate(conn: sqlite3.Connection) -> None:
    """Add the columns a SQLite ledger written by an older build lacks (idempotent, race-safe)."""

    def missing() -> list[tuple[str, str]]:
        have = {str(row[1]) for row in conn.execute("PRAGMA table_info(executions)")}
        return [(name, kind) for name, kind in _ADDED_COLUMNS if name not in have]

    if not missing():
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process may have just added them.
        for name, kind in missing():
            conn.execute(f"ALTER TABLE executions ADD COLUMN {name} {kind}")
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


# "When did this attempt happen": the claim for fired runs, the start for runs
# whose claim was never recorded, the recording time for missed/skipped rows.
WHEN = "COALESCE(claimed_at, started_at, finished_at, scheduled_at)"
ORDER = f"{WHEN} DESC, rowid DESC"


def prune_slack(keep: int) -> int:
    """Rows a job's ledger may hold beyond ``keep`` before it is pruned back to ``keep``.

    A tenth of the bound (none under 10): a job that has run ``keep`` times would
    otherwise pay a sorted delete on every claim and every result, for ever; this
    way it pays one per ``keep // 10`` rows.
    """
    return keep // 10


def prune(conn: SqlConn, job_id: str, keep: int) -> None:
    """Delete the job's rows beyond the newest ``keep`` once there are more than
    ``keep + prune_slack(keep)``; live rows are never pruned.

    Cheap when under the bound (one indexed count), which is the common case.
    Live (claimed/running) rows survive so recovery can still settle them.
    """
    if keep < 1:
        raise ValueError(f"keep_per_job must be >= 1, got {keep!r}")
    (count,) = conn.execute(
        "SELECT COUNT(*) FROM executions WHERE job_id = ?", (job_id,)
    ).fetchone()
    if count <= keep + prune_slack(keep):
        return
    conn.execute(
        f"""
        DELETE FROM executions
        WHERE job_id = ?
          AND status NOT IN ('claimed', 'running')
          AND rowid NOT IN (
              SELECT rowid FROM executions WHERE job_id = ? ORDER BY {ORDER} LIMIT ?
          )
        """,
        (job_id, job_id, keep),
    )


def insert_rows(conn: SqlConn, rows: Sequence[LedgerRow], keep_per_job: int) -> int:
    """Insert claim rows (``claimed``, id = token; kept if already there) and event rows
    (``missed``/``skipped``, final at once) inside the caller's transaction."""
    inserted = 0
    touched: set[str] = set()
    for r in rows:
        if r.attempt != 1:
            # Only retries name the column: a first attempt must also insert into a
            # ledger an older build created, before cron.executions has migrated it.
            cur = conn.execute(
                """
                INSERT INTO executions
                    (id, job_id, job_name, scheduled_at, claimed_at, finished_at, status,
                     source, owner, error, attempt)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO NOTHING
                """,
                (
                    r.id,
                    r.job_id,
                    r.job_name,
                    r.scheduled_at,
                    r.at if r.status == "claimed" else None,
                    None if r.status == "claimed" else r.at,
                    r.status,
                    r.source,
                    r.owner,
                    r.error,
                    r.attempt,
                ),
            )
        elif r.status == "claimed":
            cur = conn.execute(
                """
                INSERT INTO executions
                    (id, job_id, job_name, scheduled_at, claimed_at, status, source, owner)
                VALUES (?, ?, ?, ?, ?, 'claimed', ?, ?)
                ON CONFLICT (id) DO NOTHING
                """,
                (r.id, r.job_id, r.job_name, r.scheduled_at, r.at, r.source, r.owner),
            )
        else:
            cur = conn.execute(
                """
                INSERT INTO executions
                    (id, job_id, job_name, scheduled_at, finished_at, status, source, owner, error)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    r.id,
                    r.job_id,
                    r.job_name,
                    r.scheduled_at,
                    r.at,
                    r.status,
                    r.source,
                    r.owner,
                    r.error,
                ),
            )
        if cur.rowcount == 1:
            inserted += 1
            touched.add(r.job_id)
    for job_id in over_bound(conn, touched, keep_per_job):
        prune(conn, job_id, keep_per_job)
    return inserted


_IN_CHUNK = 500  # bound parameters per query (SQLite's limit is 999 on old builds)


def over_bound(conn: SqlConn, job_ids: set[str], keep: int) -> list[str]:
    """Which of ``job_ids`` are due a :func:`prune` (more than ``keep`` rows plus the
    slack): one grouped count per 500 jobs, not one per job (a batch claim of 100
    jobs touches 100)."""
    if keep < 1:
        raise ValueError(f"keep_per_job must be >= 1, got {keep!r}")
    ids = sorted(job_ids)
    out: list[str] = []
    for i in range(0, len(ids), _IN_CHUNK):
        chunk = ids[i : i + _IN_CHUNK]
        marks = ", ".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT job_id, COUNT(*) FROM executions WHERE job_id IN ({marks}) GROUP BY job_id",
            chunk,
        ).fetchall()
        out.extend(str(r[0]) for r in rows if int(r[1]) > keep + prune_slack(keep))
    return out


# -- the webhook's replay record (SPEC §7) ---------------------------------------------------

NONCE_PRUNE_EVERY = 60.0
"""Seconds between two deletions of expired signatures by this process (see below)."""

_pruned_at: float | None = None


def remember_nonce(conn: SqlConn, digest: str, *, at: float, ttl: float) -> bool:
    """Record a signature in ``webhook_nonces``, inside the caller's transaction; False = replay.

    A signature recorded and not yet expired is a replay. The insert is the
    compare-and-set: of racing callers (threads, processes, nodes) exactly one
    inserts or revives an expired row; a live row is left alone and means replay.

    Expired rows are deleted at most every :data:`NONCE_PRUNE_EVERY` seconds per
    process: the table has no index on ``expires_at`` (a scan), and an expired
    row left in place is harmless — the compare-and-set above revives it.
    """
    global _pruned_at
    if _pruned_at is None or not 0 <= at - _pruned_at < NONCE_PRUNE_EVERY:
        conn.execute("DELETE FROM webhook_nonces WHERE expires_at < ?", (at,))
        _pruned_at = at
    row = conn.execute(
        "INSERT INTO webhook_nonces (signature, expires_at) VALUES (?, ?) "
        "ON CONFLICT (signature) DO UPDATE SET expires_at = excluded.expires_at "
        "WHERE webhook_nonces.expires_at < ? RETURNING signature",
        (digest, at + ttl, at),
    ).fetchone()
    return row is not None
