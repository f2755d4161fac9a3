"""The PostgreSQL store's claim statement and its parameters (:meth:`PostgresJobStore.swap_many`).

Split from :mod:`cron.stores.postgres` so the one statement every claim, result
and claim refresh runs can be read, and reviewed, on its own.
"""

from __future__ import annotations

import json
from typing import Any

from cron.ledger_sql import LedgerRow
from cron.stores._pgschema import CHANNEL

ROW_COLUMNS = (
    "id, job_id, job_name, scheduled_at, claimed_at, finished_at, status, source, "
    "owner, error, attempt"
)

# The claim, whole: lock the rows still at the expected revision, skipping any
# another transaction holds (that node is swapping it now, so ours would lose,
# and we never wait); update them; insert the winners' ledger rows; notify the
# jobs whose wake time moved earlier. One autocommit statement: one round trip,
# and nothing of it commits without the rest. The batch travels as two JSON arrays
# (one json.dumps each, where 17 array parameters cost more to adapt than the
# statement costs to run), so the text is the same for every batch size and is
# prepared once per connection.
SWAP_MANY = (
    "WITH s AS (SELECT * FROM json_to_recordset(%s::json) "
    "AS s(id text, rev bigint, doc text, wake_at timestamptz, key text)), "
    # By the primary key (a join on a function's rows may plan a scan of the table).
    "l AS (SELECT j.id, j.wake_at AS was FROM cronkit_jobs j "
    "WHERE j.id = ANY(ARRAY(SELECT id FROM s)) "
    "AND (j.id, j.rev) IN (SELECT id, rev FROM s) FOR UPDATE SKIP LOCKED), "
    "u AS (UPDATE cronkit_jobs j SET doc = s.doc, wake_at = s.wake_at, key = s.key, "
    "rev = j.rev + 1 FROM s, l WHERE j.id = s.id AND j.id = l.id AND j.rev = s.rev "
    "RETURNING j.id, j.rev, j.wake_at, l.was), "
    "r AS (SELECT r.* FROM json_to_recordset(%s::json) AS r(sw text, id text, "
    "job_id text, job_name text, scheduled_at text, claimed_at text, finished_at text, "
    "status text, source text, owner text, error text, attempt int, keep bool) "
    "JOIN u ON r.sw = u.id), "
    # A claim's row already there is kept (ledger_sql.insert_rows); an event row's id
    # taken fails the statement, and with it the swap.
    f"w AS (INSERT INTO executions ({ROW_COLUMNS}) SELECT {ROW_COLUMNS} FROM r "
    "WHERE keep ON CONFLICT (id) DO NOTHING), "
    f"e AS (INSERT INTO executions ({ROW_COLUMNS}) SELECT {ROW_COLUMNS} FROM r "
    "WHERE NOT keep) "
    # Other nodes hear only a job that may now be due sooner: a claim or a run's
    # result moves a wake time later, and waking every node for it is a storm of
    # idle ticks on every fire (user edits go through swap, which always notifies).
    "SELECT u.id, u.rev, CASE WHEN u.wake_at < u.was OR (u.was IS NULL AND "
    f"u.wake_at IS NOT NULL) THEN pg_notify('{CHANNEL}', u.id) END FROM u"
)


def swap_many_params(
    swaps: list[tuple[Any, ...]], rows: list[tuple[str, LedgerRow]]
) -> tuple[str, str]:
    # _swap_params order: (doc, wake_at, key, job_id, rev).
    jobs = [
        {
            "id": job_id,
            "rev": rev,
            "doc": doc,
            "wake_at": wake.isoformat() if wake is not None else None,
            "key": key,
        }
        for doc, wake, key, job_id, rev in swaps
    ]
    ledger = [
        {
            "sw": sw,
            "id": r.id,
            "job_id": r.job_id,
            "job_name": r.job_name,
            "scheduled_at": r.scheduled_at,
            "claimed_at": r.at if r.status == "claimed" else None,
            "finished_at": None if r.status == "claimed" else r.at,
            "status": r.status,
            "source": r.source,
            "owner": r.owner,
            "error": r.error,
            "attempt": r.attempt,
            "keep": r.status == "claimed" or r.attempt != 1,
        }
        for sw, r in rows
    ]
    return (json.dumps(jobs, separators=(",", ":")), json.dumps(ledger, separators=(",", ":")))


__all__ = ["ROW_COLUMNS", "SWAP_MANY", "swap_many_params"]
