"""Live runs' process groups, and settling the runs whose owner is gone (SPEC §5).

A command's process group is recorded on its ledger row before the command is
let go (:func:`record_process_group`), so a gateway killed at any later moment
leaves a row naming the group recovery must end.
:func:`recover_interrupted_executions` marks ``unknown`` only rows whose owner
process is provably gone, after ending a group that outlived it; nothing is
ever rerun from here. Callers import these from :mod:`cron.executions`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cron import ledger_sql, procinfo
from cron.ledger import _db, _now_iso, _transact
from cron.ledger_sql import COLUMNS
from cron.ledgerdb import SqlConn
from cron.model import LIVE_STATUSES, RunStatus
from cron.procgroup import ProcessGroup

# Logged under the ledger API's name: the gateway's log lines name it.
log = logging.getLogger("cron.executions")

_LIVE = "status IN ({})".format(", ".join(f"'{s}'" for s in sorted(LIVE_STATUSES)))
"""The SQL test of a live row: ``status IN ('claimed', 'running')``."""


def record_process_group(token: str, group: ProcessGroup) -> bool:
    """Record on the ``token`` row the process group its command runs in.

    Written before the command is let go (see ``cron.runners.run_command``), so
    a gateway killed at any later moment leaves a row naming the group
    recovery must end. Returns True when a live row was updated.
    """

    def update(conn: SqlConn) -> bool:
        cur = conn.execute(
            f"UPDATE executions SET pgid = ?, pgid_start = ? WHERE id = ? AND {_LIVE}",
            (group.pgid, group.leader_start, token),
        )
        return cur.rowcount == 1

    return _transact(update)


def process_group_of(token: str) -> ProcessGroup | None:
    """The process group recorded on the ``token`` row, or None."""
    with _db().read() as conn:
        if conn is None:
            return None
        row = conn.execute(
            "SELECT pgid, pgid_start FROM executions WHERE id = ?", (token,)
        ).fetchone()
    if row is None or row["pgid"] is None:
        return None
    return ProcessGroup(int(row["pgid"]), row["pgid_start"])


def list_live_executions() -> list[dict[str, Any]]:
    """Every ``claimed``/``running`` row (with ``pgid`` and ``pgid_start``), oldest first."""
    cols = ", ".join((*COLUMNS, "pgid", "pgid_start"))
    with _db().read() as conn:
        if conn is None:
            return []
        rows = conn.execute(
            f"SELECT {cols} FROM executions WHERE {_LIVE} ORDER BY {ledger_sql.WHEN} ASC, rowid ASC"
        ).fetchall()
    return [dict(row) for row in rows]


def recover_interrupted_executions(*, now: datetime | None = None) -> int:
    """Mark ``unknown`` every claimed/running row whose owner is provably gone.

    Returns how many rows were marked; see
    :func:`recover_interrupted_execution_rows` for the rows themselves.
    """
    return len(recover_interrupted_execution_rows(now=now))


def recover_interrupted_execution_rows(
    *,
    now: datetime | None = None,
    term_grace: float | None = None,
    remote_gone: Callable[[dict[str, Any]], bool] | None = None,
) -> list[tuple[str, str]]:
    """Mark ``unknown`` every claimed/running row whose owner is provably gone.

    "Provably gone" is :func:`cron.procinfo.owner_gone`: same host and the pid
    is dead, or alive with another start time (reused). Rows owned by a live
    process, by another host, or with no owner are left alone. Nothing is
    rerun: the run may have had effects, so its outcome is recorded as unknown.

    A row whose command's process group outlived its owner (the gateway was
    killed with ``kill -9``) has that group ended first — SIGTERM, SIGKILL
    ``term_grace`` seconds later (default :data:`cron.procgroup.TERM_GRACE`) —
    so settling the row (and the caller releasing the claim) can never let a
    second run start beside it. A group that cannot be ended (another user's
    process) keeps its row live, logged at ERROR.

    A pid means nothing on another host: a row owned by another host is judged
    by ``remote_gone(row)`` (on a shared store, the age of its claim: SPEC §11),
    and left alone when it is not given. Its process group is never touched.
    Returns ``(execution id = claim token, job_id)`` of each row marked.
    """
    from cron.procgroup import TERM_GRACE

    grace = TERM_GRACE if term_grace is None else term_grace
    with _db().read() as conn:
        if conn is None:
            return []
        rows = conn.execute(
            "SELECT id, job_id, owner, pgid, pgid_start, claimed_at, started_at FROM executions "
            f"WHERE {_LIVE}"
        ).fetchall()
    verdicts: dict[str, bool] = {}
    dead: list[tuple[str, str, str, str]] = []
    here = procinfo.hostname()
    for row in rows:
        owner = row["owner"]
        if not owner:
            continue
        parsed = procinfo.split_owner(owner)
        if parsed is not None and parsed[0] != here:
            if remote_gone is None or not remote_gone(dict(row)):
                continue
            dead.append(
                (
                    row["id"],
                    row["job_id"],
                    owner,
                    f"owner {owner} (another host) stopped refreshing its claim before "
                    "the run finished; its outcome is unknown and it was not rerun",
                )
            )
            continue
        if owner not in verdicts:
            verdicts[owner] = procinfo.owner_gone(owner)
        if not verdicts[owner]:
            continue
        note = ""
        if row["pgid"] is not None:
            group = ProcessGroup(int(row["pgid"]), row["pgid_start"])
            if group.alive():
                log.warning(
                    "job %s: its run's process group %d outlived owner %s; ending it",
                    row["job_id"],
                    group.pgid,
                    owner,
                )
                if not group.terminate(grace):
                    log.error(
                        "job %s: process group %d of a dead owner's run cannot be ended; "
                        "its run stays live so no second copy starts",
                        row["job_id"],
                        group.pgid,
                    )
                    continue
                note = f"; its process group {group.pgid} was still running and was ended"
        dead.append(
            (
                row["id"],
                row["job_id"],
                owner,
                f"owner process {owner} is gone (exited or pid reused) before the run "
                f"finished{note}; its outcome is unknown and it was not rerun",
            )
        )
    if not dead:
        return []
    finished = _now_iso(now)
    marked: list[tuple[str, str]] = []

    def settle(conn: SqlConn) -> None:
        for exec_id, job_id, owner, message in dead:
            # Re-check the status inside the write: the row may have been
            # settled between the read above and this transaction.
            cur = conn.execute(
                "UPDATE executions SET status = ?, finished_at = ?, error = ? "
                f"WHERE id = ? AND owner = ? AND {_LIVE}",
                (RunStatus.UNKNOWN.value, finished, message, exec_id, owner),
            )
            if cur.rowcount:
                marked.append((exec_id, job_id))

    _transact(settle)
    if marked:
        log.warning("marked %d interrupted execution(s) as unknown", len(marked))
    return marked


__all__ = [
    "list_live_executions",
    "process_group_of",
    "record_process_group",
    "recover_interrupted_execution_rows",
    "recover_interrupted_executions",
]
