"""The run ledger: one row per attempt, in the store's ledger database.

``<home>/cron/executions.db`` beside ``jobs.json``; the store's own database on
a database store (:meth:`cron.stores.JobStore.ledger`).

A fired run's row id is its claim token, so the store's ``fire_claim`` and the
ledger row name the same attempt. Rows the scheduler records without running
anything (``missed``, ``skipped``) get a fresh uuid4 hex id.

Lifecycle of a fired run::

    record_claim  -> claimed
    mark_running  -> running        (inserts the row if the claim was never recorded)
    finish        -> ok | error | timeout | interrupted

``recover_interrupted_executions`` turns ``claimed``/``running`` rows whose owner
process is provably gone into ``unknown``; nothing is ever rerun from here.

Concurrency: several processes and threads write at once. Writes go through
:meth:`cron.ledgerdb.LedgerDB.transact` (writers of this process that arrive
together share one transaction, each in its own savepoint; on SQLite that is
one ``BEGIN IMMEDIATE``, so other processes queue on its lock). Reads never
create the ledger. A database error (a corrupt file: ``sqlite3.DatabaseError``)
is raised unchanged: callers decide whether a ledger failure matters (the
scheduler logs it and keeps firing).

Timestamps are ISO-8601 UTC strings with a ``+00:00`` offset.

Below this module: :mod:`cron.ledger` (where the ledger is, write
transactions), :mod:`cron.recovery` (process groups on rows, recovery of a
dead owner's runs) and :mod:`cron.job_events` (the audit's event rows); the
names of the first two that callers use are importable from here.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from cron import ledger_sql, procinfo
from cron.ledger import _db, _now_iso, _opt_iso, _transact, write_ledger
from cron.ledger_sql import LedgerRow
from cron.ledgerdb import SqlConn
from cron.model import EVENT_STATUSES, FINAL_STATUSES, LIVE_STATUSES, RunStatus
from cron.recovery import (
    list_live_executions,
    process_group_of,
    record_process_group,
    recover_interrupted_execution_rows,
    recover_interrupted_executions,
)

log = logging.getLogger(__name__)

KEEP_PER_JOB = ledger_sql.KEEP_PER_JOB

# The statuses are cron.model's; re-exported here, where the ledger's callers look.
# A claimed row may also end as skipped/missed (e.g. the job vanished before it ran).
STATUSES: frozenset[str] = frozenset(RunStatus)

COLUMNS = ledger_sql.COLUMNS
ATTEMPT_COLUMNS = ledger_sql.ATTEMPT_COLUMNS
_ORDER = ledger_sql.ORDER


def _check_status(status: str, allowed: frozenset[str]) -> None:
    if status not in allowed:
        raise ValueError(
            f"invalid execution status {status!r}; expected one of {', '.join(sorted(allowed))}"
        )


_prune = ledger_sql.prune


def insert_rows(rows: Sequence[LedgerRow], *, keep_per_job: int = KEEP_PER_JOB) -> int:
    """Write the ledger rows a store swap carried (claims and missed/skipped events),
    in one transaction; returns how many were inserted (a claim row already there is kept)."""
    if not rows:
        return 0
    return _transact(lambda conn: ledger_sql.insert_rows(conn, rows, keep_per_job))


def record_claim(
    token: str,
    job_id: str,
    *,
    scheduled_at: datetime | str | None,
    source: str,
    owner: str | None = None,
    job_name: str | None = None,
    keep_per_job: int = KEEP_PER_JOB,
    now: datetime | None = None,
) -> bool:
    """Record that ``token`` claimed a fire of ``job_id``: a new row in status ``claimed``.

    ``owner`` defaults to this process (``host:pid:start``). Idempotent: a row
    with this id already present is left as it is (``ON CONFLICT DO NOTHING``).
    Returns True when the row was inserted.
    """
    row = (
        token,
        job_id,
        job_name,
        _opt_iso(scheduled_at),
        _now_iso(now),
        source,
        owner if owner is not None else procinfo.owner_id(),
    )

    def insert(conn: SqlConn) -> bool:
        cur = conn.execute(
            """
            INSERT INTO executions
                (id, job_id, job_name, scheduled_at, claimed_at, status, source, owner)
            VALUES (?, ?, ?, ?, ?, 'claimed', ?, ?)
            ON CONFLICT (id) DO NOTHING
            """,
            row,
        )
        if cur.rowcount != 1:
            return False
        _prune(conn, job_id, keep_per_job)
        return True

    return _transact(insert)


def record_claims(
    rows: list[tuple[str, str, str | None, str | None, str]],
    *,
    source: str,
    keep_per_job: int = KEEP_PER_JOB,
    now: datetime | None = None,
) -> int:
    """:func:`record_claim` for many claims in one transaction (the tick's batch).

    ``rows`` are ``(token, job_id, scheduled_at, job_name, owner)``. Returns
    how many rows were inserted.
    """
    if not rows:
        return 0
    claimed_at = _now_iso(now)

    def insert(conn: SqlConn) -> int:
        inserted = 0
        for token, job_id, scheduled_at, job_name, owner in rows:
            cur = conn.execute(
                """
                INSERT INTO executions
                    (id, job_id, job_name, scheduled_at, claimed_at, status, source, owner)
                VALUES (?, ?, ?, ?, ?, 'claimed', ?, ?)
                ON CONFLICT (id) DO NOTHING
                """,
                (token, job_id, job_name, scheduled_at, claimed_at, source, owner),
            )
            if cur.rowcount == 1:
                inserted += 1
                _prune(conn, job_id, keep_per_job)
        return inserted

    return _transact(insert)


def mark_running(
    token: str,
    *,
    job_id: str,
    scheduled_at: datetime | str | None = None,
    source: str = "tick",
    owner: str | None = None,
    job_name: str | None = None,
    keep_per_job: int = KEEP_PER_JOB,
    now: datetime | None = None,
    output_path: str | Path | None = None,
) -> bool:
    """Move the ``token`` row to ``running`` (inserting it if the claim was never recorded).

    The running process becomes the row's owner (``owner`` defaults to this
    process), so recovery judges the process that actually runs the action.
    ``output_path`` is the run's output file, known from the start so a
    running or failed run's output can be found. A row that already reached a
    final status is not touched (a late or repeated call cannot resurrect a
    finished run). Returns True when the row is now ``running``.
    """
    return (
        start_run(
            token,
            job_id=job_id,
            scheduled_at=scheduled_at,
            source=source,
            owner=owner,
            job_name=job_name,
            keep_per_job=keep_per_job,
            now=now,
            output_path=output_path,
        )
        is not None
    )


def start_run(
    token: str,
    *,
    job_id: str,
    scheduled_at: datetime | str | None = None,
    source: str = "tick",
    owner: str | None = None,
    job_name: str | None = None,
    keep_per_job: int = KEEP_PER_JOB,
    now: datetime | None = None,
    output_path: str | Path | None = None,
) -> str | None:
    """:func:`mark_running`, returning the row's ``source`` (who fired it), or None
    when the row was already final and is left alone."""
    running_owner = owner if owner is not None else procinfo.owner_id()
    started = _now_iso(now)
    out = str(output_path) if output_path is not None else None
    return _transact(
        lambda conn: _mark_running_in(
            conn,
            token,
            job_id=job_id,
            scheduled_at=scheduled_at,
            source=source,
            owner=running_owner,
            job_name=job_name,
            keep_per_job=keep_per_job,
            started=started,
            output_path=out,
        )
    )


def _mark_running_in(
    conn: SqlConn,
    token: str,
    *,
    job_id: str,
    scheduled_at: datetime | str | None,
    source: str,
    owner: str,
    job_name: str | None,
    keep_per_job: int,
    started: str,
    output_path: str | None = None,
) -> str | None:
    """The body of :func:`start_run`, inside the caller's transaction."""
    cur = conn.execute(
        """
        UPDATE executions
        SET status = 'running', started_at = ?, owner = ?,
            scheduled_at = COALESCE(scheduled_at, ?),
            job_name = COALESCE(job_name, ?),
            output_path = COALESCE(?, output_path)
        WHERE id = ? AND status IN ('claimed', 'running')
        """,
        (started, owner, _opt_iso(scheduled_at), job_name, output_path, token),
    )
    if cur.rowcount == 1:
        row = conn.execute("SELECT source FROM executions WHERE id = ?", (token,)).fetchone()
        return str(row["source"] or source)
    cur = conn.execute(
        """
        INSERT INTO executions
            (id, job_id, job_name, scheduled_at, started_at, status, source, owner, output_path)
        VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?)
        ON CONFLICT (id) DO NOTHING
        """,
        (token, job_id, job_name, _opt_iso(scheduled_at), started, source, owner, output_path),
    )
    if cur.rowcount != 1:
        log.warning(
            "ledger row %s of job %s is already final; not marking it running",
            token,
            job_id,
        )
        return None
    _prune(conn, job_id, keep_per_job)
    return source


def _close_live(
    conn: SqlConn,
    token: str,
    row: Any,
    status: str,
    finished: str,
    error: str | None,
    output_path: str | None,
) -> bool:
    """Close a live row; a row already final keeps its outcome (each slot has one, SPEC §13).

    A row is final before its run reports only when its claim was judged gone
    (``unknown``: the owner was cut off for longer than ``claim_ttl`` and another
    node settled it): that late result is refused, as the job refuses it.
    """
    if row["status"] not in LIVE_STATUSES:
        log.warning(
            "ledger row %s of job %s is already %s; the late result %s is not recorded",
            token,
            row["job_id"],
            row["status"],
            status,
        )
        return False
    conn.execute(
        "UPDATE executions SET status = ?, finished_at = ?, error = ?, "
        "output_path = COALESCE(?, output_path) WHERE id = ?",
        (status, finished, error, output_path, token),
    )
    return True


def finish(
    token: str,
    *,
    status: str,
    error: str | None = None,
    output_path: str | Path | None = None,
    keep_per_job: int = KEEP_PER_JOB,
    now: datetime | None = None,
) -> bool:
    """Close the ``token`` row with a final status.

    ``status`` is ok|error|timeout|interrupted|unknown, or skipped|missed for a
    claim that ended without running (e.g. the job was removed in between).

    ``output_path`` None keeps the path recorded when the run started.
    Also prunes that job's rows beyond ``keep_per_job``. Returns False (and
    logs a warning) when no row has this id (e.g. the ledger was reset) or the
    row is already final (its outcome stands).
    """
    _check_status(status, FINAL_STATUSES)
    finished = _now_iso(now)
    out = str(output_path) if output_path is not None else None

    def close(conn: SqlConn) -> bool:
        row = conn.execute(
            "SELECT job_id, status FROM executions WHERE id = ?", (token,)
        ).fetchone()
        if row is None:
            log.warning("no ledger row %s to finish with status %s", token, status)
            return False
        if not _close_live(conn, token, row, status, finished, error, out):
            return False
        _prune(conn, row["job_id"], keep_per_job)
        return True

    return _transact(close)


def finish_many(
    rows: list[tuple[str, str, str | None, str | None]],
    *,
    keep_per_job: int = KEEP_PER_JOB,
    now: datetime | None = None,
) -> int:
    """:func:`finish` for many runs in one transaction; ``rows`` are
    ``(token, status, error, output_path)``. Returns how many rows were closed."""
    if not rows:
        return 0
    for _, status, _, _ in rows:
        _check_status(status, FINAL_STATUSES)
    finished = _now_iso(now)

    def close(conn: SqlConn) -> int:
        closed = 0
        jobs_touched: set[str] = set()
        for token, status, error, output_path in rows:
            row = conn.execute(
                "SELECT job_id, status FROM executions WHERE id = ?", (token,)
            ).fetchone()
            if row is None:
                log.warning("no ledger row %s to finish with status %s", token, status)
                continue
            if _close_live(conn, token, row, status, finished, error, output_path):
                jobs_touched.add(row["job_id"])
                closed += 1
        for job_id in jobs_touched:
            _prune(conn, job_id, keep_per_job)
        return closed

    return _transact(close)


def record_event(
    job_id: str,
    *,
    status: str,
    scheduled_at: datetime | str | None,
    source: str,
    error: str | None = None,
    job_name: str | None = None,
    keep_per_job: int = KEEP_PER_JOB,
    now: datetime | None = None,
) -> str:
    """Record a slot that was not run (``missed`` or ``skipped``); returns the new row id.

    The row is final at once: ``finished_at`` is ``now`` and nothing was claimed
    or started.
    """
    _check_status(status, EVENT_STATUSES)
    exec_id = uuid.uuid4().hex
    row = (
        exec_id,
        job_id,
        job_name,
        _opt_iso(scheduled_at),
        _now_iso(now),
        status,
        source,
        procinfo.owner_id(),
        error,
    )

    def insert(conn: SqlConn) -> None:
        conn.execute(
            """
            INSERT INTO executions
                (id, job_id, job_name, scheduled_at, finished_at, status, source, owner, error)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            row,
        )
        _prune(conn, job_id, keep_per_job)

    _transact(insert)
    return exec_id


def list_executions(
    job_id: str | None = None, limit: int | None = 50, *, attempts: bool = False
) -> list[dict[str, Any]]:
    """Ledger rows, newest first (by claim/start/record time, then insertion order).

    ``job_id`` filters to one job; ``limit=None`` returns every row.
    ``attempts`` adds each row's ``attempt`` (1 = a slot's first run, 2, 3 ... retries).
    """
    sql = f"SELECT {', '.join(ATTEMPT_COLUMNS if attempts else COLUMNS)} FROM executions"
    params: list[Any] = []
    if job_id is not None:
        sql += " WHERE job_id = ?"
        params.append(job_id)
    sql += f" ORDER BY {_ORDER}"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(max(int(limit), 0))
    with _db().read() as conn:
        if conn is None:
            return []
        return [dict(row) for row in conn.execute(sql, params).fetchall()]


def get_execution(exec_id: str, *, attempts: bool = False) -> dict[str, Any] | None:
    """The row with this id as a dict (with ``attempt`` if ``attempts``), or None."""
    cols = ATTEMPT_COLUMNS if attempts else COLUMNS
    with _db().read() as conn:
        if conn is None:
            return None
        row = conn.execute(
            f"SELECT {', '.join(cols)} FROM executions WHERE id = ?", (exec_id,)
        ).fetchone()
    return dict(row) if row is not None else None


__all__ = [
    "ATTEMPT_COLUMNS",
    "COLUMNS",
    "EVENT_STATUSES",
    "FINAL_STATUSES",
    "KEEP_PER_JOB",
    "LIVE_STATUSES",
    "STATUSES",
    "finish",
    "finish_many",
    "get_execution",
    "insert_rows",
    "list_executions",
    "list_live_executions",
    "mark_running",
    "process_group_of",
    "record_claim",
    "record_claims",
    "record_event",
    "record_process_group",
    "recover_interrupted_execution_rows",
    "recover_interrupted_executions",
    "start_run",
    "write_ledger",
]
