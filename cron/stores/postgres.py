"""A PostgreSQL store: jobs, the run ledger, the ticker registry and the replay record in one
database, shared by every node of a cluster (SPEC §10, §11).

``postgresql://[user[:password]@]host[:port]/dbname[?param=value...]`` (or
``postgres://``): a libpq URL; the password may also come from ``PGPASSWORD``
or ``~/.pgpass``. Query parameters go to libpq, except cronkit's own:
``pool_min`` (default 1), ``pool_max`` (10) and ``pool_timeout`` (seconds an
operation waits for a free connection, 10). ``connect_timeout`` defaults to 5 s.

Schema (version :data:`SCHEMA_VERSION`, recorded in ``cronkit_meta``; DDL in
:data:`SCHEMA`)::

    cronkit_jobs(id text PRIMARY KEY, rev bigint, doc text, wake_at timestamptz,
                 key text UNIQUE, seq bigint identity)   -- partial index on wake_at
    executions, job_events, tickers, webhook_nonces      -- cron.ledger_sql's tables

It is created on the first write (never by a read), under
``pg_advisory_xact_lock`` so processes starting together create it once; a
database whose recorded version is newer than this code is refused
(:class:`cron.errors.SchemaVersionError`). The ledger tables have the columns
of :data:`cron.ledger_sql.SCHEMA`; SQLite's implicit ``rowid`` is an explicit
identity column of ``executions``.

The claim: :meth:`PostgresJobStore.swap` is one ``UPDATE cronkit_jobs ...
WHERE id = %s AND rev = %s RETURNING rev`` (no row = lost).
:meth:`PostgresJobStore.swap_many` (every claim, result and claim refresh) is
one autocommit statement, a data-modifying CTE: lock the rows still at their
expected revision ``FOR UPDATE SKIP LOCKED`` — a row another node is swapping
right now is lost for this caller, so nodes never wait on each other — update
them, insert the winners' ledger rows, notify; a claim and its ``claimed`` row
commit together, in one round trip. The ledger is pruned every
:data:`PRUNE_EVERY` rows per job, after the commit, not in it.

Clock (:meth:`PostgresJobStore.clock`): the database's ``clock_timestamp()``,
as this machine's clock plus an offset measured at the midpoint of the shortest
of a few round trips and refreshed every :data:`~cron.stores._pgconn.CLOCK_REFRESH`
seconds — cheap, and accurate to half a round trip (a slower measurement does
not replace a better one).

Change hints: every committed insert, delete and :meth:`~PostgresJobStore.swap`
(a user's edit) runs ``pg_notify('cronkit_jobs', <job id>)`` in its statement; a
:meth:`~PostgresJobStore.swap_many` notifies only for a job whose wake time moved
earlier (a claim or a result moves it later: no other node needs to wake). One
daemon thread per process holds a dedicated autocommit connection (outside the
pool) doing ``LISTEN cronkit_jobs``; it calls :meth:`~PostgresJobStore.subscribe`'s callbacks and
moves :meth:`~PostgresJobStore.version`. It reconnects with backoff; a
reconnect counts as a change (notifications may have been missed).

Connections: a ``psycopg_pool.ConnectionPool`` per process (a forked child
opens its own; the sockets it inherited are pointed at ``/dev/null`` so it can
never talk on, or close, its parent's sessions). A connection idle for more
than :data:`~cron.stores._pgconn.CHECK_IDLE` seconds is checked before use. An
unreachable database at open or on first use is a :class:`cron.errors.StoreConfigError`;
losing it later makes operations raise :class:`cron.errors.StoreUnavailableError`
(a ``ConnectionError``) and drops the pool; while down, each operation first
probes with one direct connection (failing fast), and the first probe that
succeeds brings up a fresh pool.

Below this module: the DDL in :mod:`cron.stores._pgschema`, a process's pool and
listener in :mod:`cron.stores._pgproc`, reaching the database (URL, pool, losing
it, the clock) in :mod:`cron.stores._pgconn`, the ledger adapter in
:mod:`cron.stores._pgledger`. This module holds the job rows' reads and writes.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from cron import ledger_sql
from cron.claim import Job, wake_time
from cron.errors import DuplicateJobError
from cron.ledger_sql import KEEP_PER_JOB, LedgerRow
from cron.stores import JobStore, Stored, Swap
from cron.stores._pgclaim import SWAP_MANY, swap_many_params
from cron.stores._pgconn import PgConnections
from cron.stores._pgledger import PostgresLedger, _LedgerConn
from cron.stores._pgproc import _Listener
from cron.stores._pgschema import CHANNEL, SCHEMA, SCHEMA_VERSION, Conn, create_schema

__all__ = ["SCHEMA", "SCHEMA_VERSION", "PostgresJobStore", "PostgresLedger", "create_schema"]

LISTEN_WAIT = 2.0
"""How long :meth:`PostgresJobStore.subscribe` / ``version`` wait for the first LISTEN."""
PRUNE_EVERY = 64
"""A job's ledger is pruned (to ``KEEP_PER_JOB`` rows) after every this many rows this
process added for it through a swap: the bound holds within ``PRUNE_EVERY`` per process."""

log = logging.getLogger("cron.stores.postgres")


class _Duplicate(Exception):
    """An id or key of a bulk insert is taken: roll the bulk statement back."""


# -- the store ------------------------------------------------------------------------


class PostgresJobStore(PgConnections, JobStore):
    """Jobs as rows of one PostgreSQL database; the ledger and registry beside them.

    Shared by every node of a cluster (SPEC §11). See the module docstring for
    the schema, the claim statements, the clock and the change hints.
    """

    shared = True

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._writes = itertools.count(1)
        self._write_seq = 0
        self._ledger = PostgresLedger(self)
        self._unpruned: dict[str, int] = {}
        self._prune_lock = threading.Lock()
        self._replay = self._ledger

    def __repr__(self) -> str:
        return f"PostgresJobStore({self.url!r})"

    # -- reads -----------------------------------------------------------------------

    # The hot statements (get, the due scan, next_wake, the claim) are prepared on first
    # use (``prepare=True``), not after psycopg's default five runs per connection: until
    # then each run is parsed and planned again, and a gateway's first claims after a
    # start or a reconnect paid for it.

    def get(self, job_id: str) -> Stored | None:
        with self._read() as conn:
            if conn is None:
                return None
            row = conn.execute(
                "SELECT doc, rev FROM cronkit_jobs WHERE id = %s", (job_id,), prepare=True
            ).fetchone()
        return Stored(json.loads(row[0]), row[1]) if row is not None else None

    def scan(self, *, due_by: datetime | None = None, limit: int | None = None) -> list[Stored]:
        lim = None if limit is None else max(int(limit), 0)
        with self._read() as conn:
            if conn is None:
                return []
            if due_by is None:
                rows = conn.execute(
                    "SELECT doc, rev FROM cronkit_jobs ORDER BY seq LIMIT %s", (lim,)
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT doc, rev FROM cronkit_jobs "
                    "WHERE wake_at IS NOT NULL AND wake_at <= %s "
                    "ORDER BY wake_at, id LIMIT %s",
                    (due_by, lim),
                    prepare=True,
                ).fetchall()
        return [Stored(json.loads(doc), rev) for doc, rev in rows]

    def next_wake(self) -> datetime | None:
        with self._read() as conn:
            if conn is None:
                return None
            row = conn.execute(
                "SELECT min(wake_at) FROM cronkit_jobs WHERE wake_at IS NOT NULL", prepare=True
            ).fetchone()
        if row is None or row[0] is None:
            return None
        wake: datetime = row[0]
        return wake.astimezone(UTC)

    def version(self) -> object | None:
        """Changes on every write through this store object and on every change another
        connection commits (heard by LISTEN); None while not listening (poll instead)."""
        try:
            listener = self._listener()
        except Exception:
            return None
        if not listener.tried.wait(LISTEN_WAIT) or not listener.connected:
            return None
        return (listener.generation, listener.count, self._write_seq)

    def count(self) -> int:
        with self._read() as conn:
            if conn is None:
                return 0
            row = conn.execute("SELECT count(*) FROM cronkit_jobs").fetchone()
        return int(row[0]) if row is not None else 0

    def find_key(self, key: str) -> Stored | None:
        with self._read() as conn:
            if conn is None:
                return None
            row = conn.execute(
                "SELECT doc, rev FROM cronkit_jobs WHERE key = %s", (key,)
            ).fetchone()
        return Stored(json.loads(row[0]), row[1]) if row is not None else None

    def info(self) -> dict[str, Any]:
        jobs = self.count()
        return {
            "backend": "postgresql",
            "url": self.url,
            "location": self.url,
            "schema_version": self._found_version if self._schema_ok else None,
            "jobs": jobs,
        }

    # -- writes ----------------------------------------------------------------------
    # Each job mutation notifies in its own statement (a CTE), so a single write is one
    # autocommit statement: one round trip, and the NOTIFY commits with the change.

    _INSERT = (
        "WITH i AS (INSERT INTO cronkit_jobs (id, rev, doc, wake_at, key) "
        "VALUES (%s, 1, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id, rev) "
        f"SELECT rev, pg_notify('{CHANNEL}', id) FROM i"
    )
    _UPDATE = (
        "WITH u AS (UPDATE cronkit_jobs SET doc = %s, wake_at = %s, key = %s, rev = rev + 1 "
        "WHERE id = %s AND rev = %s RETURNING id, rev) "
        f"SELECT rev, pg_notify('{CHANNEL}', id) FROM u"
    )
    _INSERT_MANY = (
        "WITH i AS (INSERT INTO cronkit_jobs (id, rev, doc, wake_at, key) "
        "SELECT b.id, 1, b.doc, b.wake_at, b.key FROM ROWS FROM (json_to_recordset(%s::json) "
        "AS (id text, doc text, wake_at timestamptz, key text)) WITH ORDINALITY "
        "AS b(id, doc, wake_at, key, n) "
        "ORDER BY b.n ON CONFLICT DO NOTHING RETURNING id) "
        f"SELECT pg_notify('{CHANNEL}', id) FROM i"
    )
    _DELETE = (
        "WITH d AS (DELETE FROM cronkit_jobs WHERE id = %s AND (%s::bigint IS NULL OR rev = %s) "
        f"RETURNING id) SELECT pg_notify('{CHANNEL}', id) FROM d"
    )

    def _wrote(self) -> None:
        self._write_seq = next(self._writes)

    def _insert_in(self, conn: Conn, job: Job, ttl: float) -> Stored | DuplicateJobError:
        doc = json.dumps(job, separators=(",", ":"))
        key = job.get("key")
        row = conn.execute(self._INSERT, (job["id"], doc, wake_time(job, ttl), key)).fetchone()
        if row is not None:
            return Stored(json.loads(doc), row[0])
        taken = conn.execute("SELECT 1 FROM cronkit_jobs WHERE id = %s", (job["id"],)).fetchone()
        if taken is not None or key is None:
            return DuplicateJobError("id", str(job["id"]))
        return DuplicateJobError("key", str(key))

    def insert(self, job: Job) -> Stored:
        ttl = self.claim_ttl
        self._ensure_schema()
        with self._connection() as conn:
            result = self._insert_in(conn, job, ttl)
        if isinstance(result, DuplicateJobError):
            raise result
        self._wrote()
        return result

    def insert_many(self, jobs: Sequence[Job]) -> list[Stored]:
        if not jobs:
            return []
        ttl = self.claim_ttl
        out: list[Stored] = []
        failed: DuplicateJobError | None = None
        docs = [json.dumps(job, separators=(",", ":")) for job in jobs]
        batch = json.dumps(
            [
                {
                    "id": job["id"],
                    "doc": doc,
                    "key": job.get("key"),
                    "wake_at": wake.isoformat()
                    if (wake := wake_time(job, ttl)) is not None
                    else None,
                }
                for job, doc in zip(jobs, docs, strict=True)
            ]
        )
        with self._tx() as conn:
            # All at once (one statement, in order) unless an id or key is taken: then
            # row by row from the start, to stop at the first duplicate (and keep the
            # jobs before it) as JobStore.insert_many says.
            try:
                with conn.transaction():
                    got = conn.execute(self._INSERT_MANY, (batch,)).fetchall()
                    if len(got) != len(jobs):
                        raise _Duplicate
            except (_Duplicate, psycopg.errors.UniqueViolation):
                pass
            else:
                self._wrote()
                return [Stored(json.loads(doc), 1) for doc in docs]
            for job in jobs:
                result = self._insert_in(conn, job, ttl)
                if isinstance(result, DuplicateJobError):
                    failed = result
                    break
                out.append(result)
        if out:
            self._wrote()
        if failed is not None:
            raise failed  # the jobs before it are committed (JobStore.insert_many)
        return out

    @staticmethod
    def _is_rev(rev: object) -> bool:
        return isinstance(rev, int) and not isinstance(rev, bool)

    def _swap_params(self, job_id: str, rev: object, new: Job, ttl: float) -> tuple[Any, ...]:
        if new.get("id") != job_id:
            raise ValueError(f"swap of job {job_id!r} got a job with id {new.get('id')!r}")
        return (
            json.dumps(new, separators=(",", ":")),
            wake_time(new, ttl),
            new.get("key"),
            job_id,
            rev,
        )

    def swap(self, job_id: str, rev: object, new: Job) -> Stored | None:
        params = self._swap_params(job_id, rev, new, self.claim_ttl)
        if not self._is_rev(rev):
            return None  # not a revision this store handed out
        self._ensure_schema()
        with self._connection() as conn:
            row = conn.execute(self._UPDATE, params).fetchone()
        if row is None:
            return None
        self._wrote()
        return Stored(new, row[0])

    def swap_many(self, swaps: Sequence[Swap]) -> list[Stored | None]:
        if not swaps:
            return []
        ttl = self.claim_ttl
        params = [self._swap_params(s.job_id, s.rev, s.new, ttl) for s in swaps]
        out: list[Stored | None] = [None] * len(swaps)
        first: dict[str, int] = {}
        todo: list[int] = []
        for i, s in enumerate(swaps):
            if not self._is_rev(s.rev):
                continue  # not a revision this store handed out: lost
            j = first.setdefault(s.job_id, i)
            if j == i:
                todo.append(i)
            elif swaps[j].rev != s.rev:
                # Two revisions of one job in a batch: only the in-order path decides
                # whether the second names the revision the first left (rare).
                return self._swap_many_in_order(swaps, params)
            # else: a second swap of the revision the first one names loses either way
        if not todo:
            return out
        self._ensure_schema()
        rows = [(swaps[i].job_id, r) for i in todo for r in swaps[i].rows]
        with self._connection() as conn:
            won = {
                jid: rev
                for jid, rev, _ in conn.execute(
                    SWAP_MANY, swap_many_params([params[i] for i in todo], rows), prepare=True
                )
            }
        for i in todo:
            rev = won.get(swaps[i].job_id)
            if rev is not None:
                out[i] = Stored(swaps[i].new, rev)
        if won:
            self._wrote()
            self._prune_later([r for jid, r in rows if jid in won])
        return out

    def _swap_many_in_order(
        self, swaps: Sequence[Swap], params: list[tuple[Any, ...]]
    ) -> list[Stored | None]:
        """:meth:`swap_many` one swap after another in one transaction (a batch naming two
        revisions of one job: a later swap may name the revision an earlier one left)."""
        out: list[Stored | None] = [None] * len(swaps)
        with self._tx() as conn:
            locked = {
                r[0]
                for r in conn.execute(
                    "SELECT id FROM cronkit_jobs WHERE id = ANY(%s::text[]) FOR UPDATE SKIP LOCKED",
                    (sorted({s.job_id for s in swaps}),),
                )
            }
            for i, s in enumerate(swaps):
                if s.job_id not in locked or not self._is_rev(s.rev):
                    continue
                row = conn.execute(self._UPDATE, params[i]).fetchone()
                if row is not None:
                    out[i] = Stored(s.new, row[0])
            rows = [r for s, o in zip(swaps, out, strict=True) if o is not None for r in s.rows]
            if rows:
                ledger_sql.insert_rows(_LedgerConn(conn), rows, KEEP_PER_JOB)
        if any(o is not None for o in out):
            self._wrote()
        return out

    def _prune_later(self, rows: list[LedgerRow]) -> None:
        """Prune a job's ledger rows once every :data:`PRUNE_EVERY` rows this process added
        for it — off the claim's statement (a run's ``finish`` prunes too)."""
        due: list[str] = []
        with self._prune_lock:
            for r in rows:
                n = self._unpruned.get(r.job_id, 0) + 1
                if n >= PRUNE_EVERY:
                    due.append(r.job_id)
                    n = 0
                self._unpruned[r.job_id] = n
        if due:
            try:
                with self._tx() as conn:
                    for job_id in due:
                        ledger_sql.prune(_LedgerConn(conn), job_id, KEEP_PER_JOB)
            except Exception:
                # The claim is committed; an unpruned ledger is only longer. Next time.
                log.warning("job store %s: pruning the ledger failed", self.url, exc_info=True)

    def write_rows(self, rows: list[LedgerRow]) -> None:
        with self._tx() as conn:
            ledger_sql.insert_rows(_LedgerConn(conn), rows, KEEP_PER_JOB)

    def delete(self, job_id: str, rev: object | None = None) -> bool:
        if rev is not None and not self._is_rev(rev):
            return False
        if not self._schema_exists():
            return False
        with self._connection() as conn:
            cur = conn.execute(self._DELETE, (job_id, rev, rev))
            deleted = cur.rowcount == 1
        if deleted:
            self._wrote()
        return deleted

    # -- change hints ----------------------------------------------------------------

    def _listener(self) -> _Listener:
        proc = self._here()
        listener = proc.listener
        if listener is None:
            with proc.lock:
                if proc.listener is None:
                    proc.listener = _Listener(self, proc)
                listener = proc.listener
        return listener

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (from the listener thread) when another connection commits a
        job change, and once after each reconnect of the listener. Returns once the
        first ``LISTEN`` was tried (at most :data:`LISTEN_WAIT` s). A hint only."""
        listener = self._listener()
        listener.add(callback)
        listener.tried.wait(LISTEN_WAIT)

    def unsubscribe(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback``."""
        listener = self._here().listener
        if listener is not None:
            listener.remove(callback)

    def close(self) -> None:
        """Stop this process's listener and close its pool (reopened if used again)."""
        proc = self._here()
        with proc.lock:
            listener, proc.listener = proc.listener, None
            pool, proc.pool = proc.pool, None
        if listener is not None:
            listener.stop()
        if pool is not None:
            pool.close(timeout=2.0)
