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
:meth:`PostgresJobStore.swap_many` is one transaction: ``SELECT id ... FOR
UPDATE SKIP LOCKED`` first — a row another node is swapping right now is lost
for this caller, so nodes never wait on each other — then the conditional
``UPDATE`` of each locked row, then the winners' ledger rows, one ``COMMIT``:
a claim and its ``claimed`` row commit together.

Clock (:meth:`PostgresJobStore.clock`): the database's ``clock_timestamp()``,
as this machine's clock plus an offset measured at the midpoint of a round
trip and refreshed every :data:`CLOCK_REFRESH` seconds — cheap, and accurate to
half a round trip.

Change hints: every committed job mutation runs ``pg_notify('cronkit_jobs',
<job id>)`` in its transaction. One daemon thread per process holds a
dedicated autocommit connection (outside the pool) doing ``LISTEN
cronkit_jobs``; it calls :meth:`~PostgresJobStore.subscribe`'s callbacks and
moves :meth:`~PostgresJobStore.version`. It reconnects with backoff; a
reconnect counts as a change (notifications may have been missed).

Connections: a ``psycopg_pool.ConnectionPool`` per process (a forked child
opens its own; the sockets it inherited are pointed at ``/dev/null`` so it can
never talk on, or close, its parent's sessions). A connection idle for more
than :data:`CHECK_IDLE` seconds is checked before use. An unreachable
database at open or on first use is a :class:`cron.errors.StoreConfigError`;
losing it later makes operations raise :class:`cron.errors.StoreUnavailableError`
(a ``ConnectionError``) and drops the pool; while down, each operation first
probes with one direct connection (failing fast), and the first probe that
succeeds brings up a fresh pool.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, SupportsIndex, overload
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from cron import ledger_sql
from cron.claim import Job, wake_time
from cron.errors import (
    DuplicateJobError,
    SchemaVersionError,
    StoreConfigError,
    StoreUnavailableError,
)
from cron.ledger_sql import KEEP_PER_JOB, LedgerRow
from cron.ledgerdb import LedgerDB, SqlConn, SqlCursor
from cron.stores import JobStore, Stored, Swap
from cron.urls import mask_url

__all__ = ["SCHEMA", "SCHEMA_VERSION", "PostgresJobStore", "PostgresLedger", "create_schema"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CHANNEL = "cronkit_jobs"
CLOCK_REFRESH = 5.0
"""Seconds between measurements of the database clock's offset."""
CHECK_IDLE = 1.0
"""A pooled connection idle longer than this is checked (an empty query) before use."""
LISTEN_WAIT = 2.0
"""How long :meth:`PostgresJobStore.subscribe` / ``version`` wait for the first LISTEN."""
LISTEN_POLL = 0.1
"""The listener's longest wait for a notification before it looks at its stop flag: what
:meth:`PostgresJobStore.close` may wait for it (an idle wake-up costs one ``poll``)."""
CONNECT_TIMEOUT = 5
POOL_MIN, POOL_MAX, POOL_TIMEOUT = 1, 10, 10.0

# pg_advisory_xact_lock key of schema creation: "cronkit" in ASCII.
_SCHEMA_LOCK = 0x63726F6E6B6974

SCHEMA: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS cronkit_meta (name text PRIMARY KEY, value text NOT NULL)",
    """CREATE TABLE IF NOT EXISTS cronkit_jobs (
        id text PRIMARY KEY,
        rev bigint NOT NULL,
        doc text NOT NULL,
        wake_at timestamptz,
        key text UNIQUE,
        seq bigint GENERATED ALWAYS AS IDENTITY
    )""",
    "CREATE INDEX IF NOT EXISTS cronkit_jobs_wake_at ON cronkit_jobs (wake_at, id) "
    "WHERE wake_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS cronkit_jobs_seq ON cronkit_jobs (seq)",
    # The ledger: cron.ledger_sql.SCHEMA's tables and columns, timestamps as ISO text
    # (the ledger code compares them as text), SQLite's rowid as an identity column.
    """CREATE TABLE IF NOT EXISTS executions (
        id text PRIMARY KEY,
        job_id text NOT NULL,
        job_name text,
        scheduled_at text,
        claimed_at text,
        started_at text,
        finished_at text,
        status text NOT NULL,
        source text,
        owner text,
        error text,
        output_path text,
        pgid bigint,
        pgid_start text,
        attempt integer NOT NULL DEFAULT 1,
        rowid bigint GENERATED BY DEFAULT AS IDENTITY UNIQUE
    )""",
    "CREATE INDEX IF NOT EXISTS executions_job_id ON executions (job_id)",
    "CREATE INDEX IF NOT EXISTS executions_status ON executions (status)",
    """CREATE TABLE IF NOT EXISTS job_events (
        id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        job_id text NOT NULL,
        kind text NOT NULL,
        at text NOT NULL,
        schedule text,
        detail text
    )""",
    "CREATE INDEX IF NOT EXISTS job_events_job ON job_events (job_id, id)",
    """CREATE TABLE IF NOT EXISTS tickers (
        node_id text PRIMARY KEY,
        host text NOT NULL,
        pid bigint NOT NULL,
        process_start text,
        home text,
        provider text,
        state text NOT NULL,
        started_at text NOT NULL,
        heartbeat_at text NOT NULL,
        success_at text,
        last_error text
    )""",
    """CREATE TABLE IF NOT EXISTS webhook_nonces (
        signature text PRIMARY KEY,
        expires_at double precision NOT NULL
    )""",
)
"""The DDL, one statement each (idempotent)."""

Conn = psycopg.Connection[Any]


def _wall() -> datetime:
    """This machine's clock (the seam the database clock's offset is measured against)."""
    return datetime.now(UTC)


def _schema_version(conn: Conn) -> int | None:
    """The recorded schema version, or None when there is no cronkit schema here."""
    row = conn.execute("SELECT to_regclass('cronkit_meta') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return None
    found = conn.execute(
        "SELECT value FROM cronkit_meta WHERE name = 'schema_version'"
    ).fetchone()
    if found is None:
        return None
    return int(found[0])


def create_schema(conn: Conn) -> int:
    """Create the schema on ``conn`` (its own transaction, or a savepoint of the caller's);
    returns the recorded version. A newer recorded version is returned untouched.

    Safe when several processes run it at once: the DDL runs under
    ``pg_advisory_xact_lock``, so the second waits for the first and finds it done.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        found = _schema_version(conn)
        if found is not None and found > SCHEMA_VERSION:
            return found
        for stmt in SCHEMA:
            conn.execute(stmt)
        conn.execute(
            "INSERT INTO cronkit_meta (name, value) VALUES ('schema_version', %s) "
            "ON CONFLICT (name) DO NOTHING",
            (str(SCHEMA_VERSION),),
        )
        version = _schema_version(conn)
    assert version is not None
    return version


# -- URLs and messages ----------------------------------------------------------------

_OWN_OPTIONS = {"pool_min", "pool_max", "pool_timeout"}
_LOOSE_PASSWORD_RE = re.compile(r"^([^@/]*?:[^:@/]*:)[^@]*@")


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _is_connection_error(exc: BaseException) -> bool:
    """Did ``exc`` lose the connection (not a statement's own failure)? By type and SQLSTATE."""
    if isinstance(exc, psycopg.InterfaceError):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate
        # No SQLSTATE: the client lost the socket. 08: connection exception.
        # 57P01-03: admin shutdown, crash shutdown, cannot connect now.
        return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")
    return False


# -- ledger rows: by position and by column name -------------------------------------


class _Row(tuple[Any, ...]):
    """A result row: a tuple (``row[0]``, unpacking) that also indexes by column name
    (``row["job_id"]``) and converts with ``dict(row)``, like ``sqlite3.Row``."""

    __slots__ = ()
    _names: tuple[str, ...] = ()
    _index: dict[str, int] = {}

    @overload
    def __getitem__(self, key: SupportsIndex | str, /) -> Any: ...

    @overload
    def __getitem__(self, key: slice, /) -> tuple[Any, ...]: ...

    def __getitem__(self, key: SupportsIndex | str | slice, /) -> Any:
        if isinstance(key, str):
            try:
                key = self._index[key]
            except KeyError:
                raise IndexError(f"no column named {key!r}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


@functools.lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> type[_Row]:
    return type("Row", (_Row,), {"_names": names,
                                 "_index": {n: i for i, n in enumerate(names)},
                                 "__slots__": ()})


def _rows(cursor: Any) -> Callable[[Sequence[Any]], _Row]:
    """psycopg row factory of :class:`_Row` (``cursor`` is a ``psycopg`` cursor)."""
    desc = cursor.description
    return _row_class(tuple(d.name for d in desc) if desc else ())


@functools.lru_cache(maxsize=1024)
def _translate(query: str) -> str:
    """Portable SQL (``?`` placeholders) -> psycopg's (``%s``; a literal ``%`` doubled).

    ``?`` inside a quoted literal or identifier is left alone.
    """
    out: list[str] = []
    quote: str | None = None
    for ch in query:
        if ch == "%":
            out.append("%%")
        elif quote is not None:
            out.append(ch)
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


class _LedgerConn:
    """A pooled connection as the ledger code sees it (:class:`cron.ledgerdb.SqlConn`)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> SqlCursor:
        cur = self._conn.cursor(row_factory=_rows)
        if params:
            cur.execute(_translate(sql), tuple(params))
        else:
            cur.execute(sql)
        return cur


class PostgresLedger(LedgerDB):
    """The ledger in the store's database, on the store's pool (SPEC §10)."""

    dialect = "postgresql"

    def __init__(self, store: PostgresJobStore) -> None:
        super().__init__()
        self._store = store

    @property
    def location(self) -> str:
        return self._store.url

    def exists(self) -> bool:
        return self._store._schema_exists()

    @contextlib.contextmanager
    def read(self) -> Iterator[SqlConn | None]:
        with self._store._read() as conn:
            yield _LedgerConn(conn) if conn is not None else None

    @contextlib.contextmanager
    def write(self) -> Iterator[SqlConn]:
        with self._store._tx() as conn:
            yield _LedgerConn(conn)

    def columns(self, conn: SqlConn, table: str) -> set[str]:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        )
        return {str(row[0]) for row in rows}


# -- per-process state ----------------------------------------------------------------

# Every connection this module opened, so a forked child can detach them (below).
_CONNECTIONS: weakref.WeakSet[Conn] = weakref.WeakSet()
_FORK_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    global _FORK_LOCK
    _FORK_LOCK = threading.Lock()
    # The child holds copies of its parent's sockets. Closing one (a psycopg object
    # being collected sends libpq's Terminate) would end the parent's session, so
    # each is pointed at /dev/null: the child can neither use nor close them.
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    try:
        for conn in list(_CONNECTIONS):
            with contextlib.suppress(Exception):
                if not conn.closed:
                    os.dup2(devnull, conn.pgconn.socket)
    finally:
        os.close(devnull)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Proc:
    """What one process holds of a store: its pool, its listener, its pooled connections."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.pool: ConnectionPool[Conn] | None = None
        self.listener: _Listener | None = None
        self.down = False
        self.conns: weakref.WeakSet[Conn] = weakref.WeakSet()

    def own_backend(self, pid: int) -> bool:
        """Is ``pid`` the server process of one of this process's open pooled connections?"""
        for conn in list(self.conns):
            with contextlib.suppress(Exception):
                if not conn.closed and conn.info.backend_pid == pid:
                    return True
        return False


class _Listener:
    """``LISTEN cronkit_jobs`` on a dedicated autocommit connection, in a daemon thread."""

    def __init__(self, store: PostgresJobStore, proc: _Proc) -> None:
        self._store = store
        self._proc = proc
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self.generation = 0
        self.count = 0
        self.connected = False
        self.tried = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cronkit-pg-listen", daemon=True)
        self._thread.start()

    def add(self, fn: Callable[[], None]) -> None:
        with self._lock:
            if fn not in self._callbacks:
                self._callbacks.append(fn)

    def remove(self, fn: Callable[[], None]) -> None:
        with self._lock:
            if fn in self._callbacks:
                self._callbacks.remove(fn)

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _changed(self) -> None:
        self.count += 1
        with self._lock:
            callbacks = list(self._callbacks)
        for fn in callbacks:
            try:
                fn()
            except Exception:
                log.exception("job store change callback %r failed", fn)

    def _run(self) -> None:
        delay = 0.2
        warned = False
        while not self._stop.is_set():
            conn: Conn | None = None
            try:
                conn = self._store._connect_direct(listen=True)
                conn.execute(f"LISTEN {CHANNEL}")
                self.generation += 1
                self.connected = True
                self.tried.set()
                if self.generation > 1:
                    log.info("job store %s: listening for changes again", self._store.url)
                    self._changed()  # changes made while we were away went unheard
                delay, warned = 0.2, False
                checked = time.monotonic()
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=LISTEN_POLL):
                        if not self._proc.own_backend(note.pid):
                            self._changed()  # our own writes already moved version()
                    if time.monotonic() - checked > 10.0:
                        conn.execute("SELECT 1")  # a silent network loss surfaces here
                        checked = time.monotonic()
            except Exception as exc:
                if not warned and self.connected:
                    log.warning("job store %s: lost the LISTEN connection (%s); reconnecting",
                                self._store.url, self._store._reason(exc))
                    warned = True
            finally:
                self.connected = False
                self.tried.set()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
            self._stop.wait(delay)
            delay = min(delay * 2, 5.0)


# -- the store ------------------------------------------------------------------------


class PostgresJobStore(JobStore):
    """Jobs as rows of one PostgreSQL database; the ledger and registry beside them.

    Shared by every node of a cluster (SPEC §11). See the module docstring for
    the schema, the claim statements, the clock and the change hints.
    """

    shared = True

    def __init__(self, url: str) -> None:
        self._url = url.strip()
        self._conninfo, options = self._parse(self._url)
        self._pool_min = self._int_option(options, "pool_min", POOL_MIN, minimum=0)
        self._pool_max = self._int_option(options, "pool_max", POOL_MAX, minimum=1)
        self._pool_timeout = self._float_option(options, "pool_timeout", POOL_TIMEOUT)
        if self._pool_max < max(self._pool_min, 1):
            raise StoreConfigError(self._url, "pool_max must be at least pool_min")
        params = psycopg.conninfo.conninfo_to_dict(self._conninfo)
        self._password = str(params.get("password") or "")
        self._kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in params:
            self._kwargs["connect_timeout"] = CONNECT_TIMEOUT
        if "application_name" not in params:
            self._kwargs["application_name"] = "cronkit"
        self._proc = _Proc()
        self._stale: list[_Proc] = []  # inherited over fork: kept, never closed
        self._contact_lock = threading.Lock()
        self._reached = False
        self._schema_ok = False
        self._found_version: int | None = None
        self._writes = itertools.count(1)
        self._write_seq = 0
        self._offset: timedelta | None = None
        self._offset_at = 0.0
        self._clock_lock = threading.Lock()
        self._ledger = PostgresLedger(self)
        self._replay = self._ledger

    def __repr__(self) -> str:
        return f"PostgresJobStore({self.url!r})"

    # -- URL -------------------------------------------------------------------------

    def _parse(self, url: str) -> tuple[str, dict[str, str]]:
        if not url.lower().startswith(("postgresql://", "postgres://")):
            # Without "//" mask_url sees no password; hide anything between ':' and '@'.
            raise StoreConfigError(
                _LOOSE_PASSWORD_RE.sub(r"\1***@", url),
                "expected postgresql://[user[:password]@]host[:port]/dbname",
            )
        try:
            parts = urlsplit(url)
            query = parse_qsl(parts.query, keep_blank_values=True)
        except ValueError as exc:
            raise StoreConfigError(url, f"malformed URL: {self._scrub(str(exc))}") from None
        own = {k: v for k, v in query if k in _OWN_OPTIONS}
        rest = [(k, v) for k, v in query if k not in _OWN_OPTIONS]
        conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest),
                               parts.fragment))
        try:
            psycopg.conninfo.conninfo_to_dict(conninfo)
        except psycopg.Error as exc:
            raise StoreConfigError(url, f"malformed URL: {self._scrub(str(exc), url)}") from None
        return conninfo, own

    def _int_option(self, options: dict[str, str], name: str, default: int, *,
                    minimum: int) -> int:
        if name not in options:
            return default
        try:
            value = int(options[name])
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise StoreConfigError(self._url, f"{name} must be an integer >= {minimum}, "
                                              f"got {options[name]!r}")
        return value

    def _float_option(self, options: dict[str, str], name: str, default: float) -> float:
        if name not in options:
            return default
        try:
            value = float(options[name])
        except ValueError:
            value = 0.0
        if not value > 0:
            raise StoreConfigError(self._url, f"{name} must be a number of seconds > 0, "
                                              f"got {options[name]!r}")
        return value

    @property
    def url(self) -> str:
        return mask_url(self._url)

    def _scrub(self, text: str, url: str | None = None) -> str:
        """``text`` on one line with the URL masked and the password gone."""
        raw = url if url is not None else self._url
        out = _one_line(text).replace(raw, mask_url(raw))
        secrets = {getattr(self, "_password", "")}
        with contextlib.suppress(ValueError):
            pw = urlsplit(raw).password
            if pw:
                secrets |= {pw, unquote(pw)}
        for secret in sorted(secrets, key=len, reverse=True):
            if secret:
                out = out.replace(secret, "***")
        return out

    def _reason(self, exc: BaseException) -> str:
        return self._scrub(str(exc) or type(exc).__name__)

    # -- connections -----------------------------------------------------------------

    def _here(self) -> _Proc:
        proc = self._proc
        if proc.pid == os.getpid():
            return proc
        with _FORK_LOCK:
            if self._proc.pid != os.getpid():
                self._stale.append(self._proc)
                self._proc = _Proc()
            return self._proc

    def _connect_direct(self, *, listen: bool = False) -> Conn:
        """One connection outside the pool (first contact, probes, the listener)."""
        kwargs = dict(self._kwargs)
        if listen:
            kwargs.update(keepalives=1, keepalives_idle=10, keepalives_interval=5,
                          keepalives_count=3)
        conn: Conn = psycopg.connect(self._conninfo, **kwargs)
        _CONNECTIONS.add(conn)
        return conn

    def _configure(self, conn: Conn) -> None:
        _CONNECTIONS.add(conn)
        self._here().conns.add(conn)
        conn._cronkit_checked = time.monotonic()  # type: ignore[attr-defined]

    @staticmethod
    def _check(conn: Conn) -> None:
        # Equivalent to ConnectionPool.check_connection, skipped for a connection used
        # successfully within CHECK_IDLE seconds (it saves a round trip per operation).
        if time.monotonic() - getattr(conn, "_cronkit_checked", 0.0) < CHECK_IDLE:
            return
        ConnectionPool.check_connection(conn)
        conn._cronkit_checked = time.monotonic()  # type: ignore[attr-defined]

    def _first_contact(self) -> None:
        """Reach the database once (open, or first use): StoreConfigError if we cannot."""
        with self._contact_lock:
            if self._reached:
                return
            try:
                conn = self._connect_direct()
            except psycopg.Error as exc:
                raise StoreConfigError(
                    self._url, f"cannot reach the database: {self._reason(exc)}"
                ) from None
            try:
                with conn:
                    self._note_version(_schema_version(conn))
                    self._measure_clock_on(conn)
            except psycopg.Error as exc:
                raise StoreConfigError(
                    self._url, f"cannot use the database: {self._reason(exc)}"
                ) from None
            self._reached = True

    def check(self) -> None:
        """Reach the database now (``open_store`` does): raises StoreConfigError naming the
        store if it cannot be reached, SchemaVersionError if its schema is newer."""
        self._first_contact()

    def _pool(self) -> ConnectionPool[Conn]:
        if not self._reached:
            self._first_contact()
        proc = self._here()
        if proc.down:
            self._recover(proc)
        pool = proc.pool
        if pool is None:
            with proc.lock:
                if proc.pool is None:
                    proc.pool = ConnectionPool(
                        self._conninfo, kwargs=self._kwargs, min_size=self._pool_min,
                        max_size=self._pool_max, open=False, configure=self._configure,
                        check=self._check, timeout=self._pool_timeout, max_idle=60.0,
                        reconnect_timeout=30.0, name=f"cronkit-{proc.pid}",
                    )
                    proc.pool.open(wait=False)
                pool = proc.pool
        return pool

    def _recover(self, proc: _Proc) -> None:
        """While the database is lost: one direct probe, failing fast; success ends it."""
        with proc.lock:
            if not proc.down:
                return
            try:
                probe = self._connect_direct()
            except psycopg.Error as exc:
                raise StoreUnavailableError(self._url, self._reason(exc)) from None
            with contextlib.suppress(Exception):
                probe.close()
            proc.down = False
            log.info("job store %s: the database is reachable again", self.url)

    def _lost(self, proc: _Proc, pool: ConnectionPool[Conn], exc: BaseException,
              ) -> StoreUnavailableError:
        """The database went away under ``pool``: drop that pool; later calls probe first."""
        reason = self._reason(exc)
        if isinstance(exc, PoolTimeout):
            try:
                self._connect_direct().close()
            except psycopg.Error as probe_exc:
                reason = self._reason(probe_exc)
            else:
                return StoreUnavailableError(
                    self._url, f"no free connection within {self._pool_timeout:g}s "
                               f"(pool_max={self._pool_max})")
        with proc.lock:
            if proc.pool is pool:
                proc.pool = None
                proc.down = True
                threading.Thread(target=pool.close, kwargs={"timeout": 1.0},
                                 name="cronkit-pg-close", daemon=True).start()
                log.warning("job store %s: lost the database (%s)", self.url, reason)
        return StoreUnavailableError(self._url, reason)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Conn]:
        """A pooled autocommit connection; connection losses become StoreUnavailableError."""
        pool = self._pool()
        proc = self._here()
        try:
            with pool.connection() as conn:
                yield conn
                conn._cronkit_checked = time.monotonic()  # type: ignore[attr-defined]
        except psycopg.Error as exc:
            if _is_connection_error(exc):
                raise self._lost(proc, pool, exc) from None
            raise

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Conn]:
        """One transaction (the schema created first if missing)."""
        self._ensure_schema()
        with self._connection() as conn, conn.transaction():
            yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Conn | None]:
        """A connection for reads, or None while there is no schema (a read creates none)."""
        if not self._schema_exists():
            yield None
            return
        with self._connection() as conn:
            yield conn

    # -- schema ----------------------------------------------------------------------

    def _note_version(self, found: int | None) -> None:
        if found is None:
            return
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(self._url, found, SCHEMA_VERSION)
        self._found_version = found
        self._schema_ok = True

    def _schema_exists(self) -> bool:
        if self._schema_ok:
            return True
        with self._connection() as conn:
            self._note_version(_schema_version(conn))
        return self._schema_ok

    def _ensure_schema(self) -> None:
        if self._schema_ok:
            return
        with self._connection() as conn:
            self._note_version(create_schema(conn))

    # -- clock -----------------------------------------------------------------------

    def _measure_clock_on(self, conn: Conn) -> None:
        t0 = _wall()
        row = conn.execute("SELECT clock_timestamp()").fetchone()
        t1 = _wall()
        assert row is not None
        self._offset = row[0] - (t0 + (t1 - t0) / 2)
        self._offset_at = time.monotonic()

    def clock(self) -> datetime:
        """The database's clock: this machine's plus an offset measured every few seconds.

        The offset is ``clock_timestamp()`` minus the midpoint of the round trip
        that read it, so the result is within half a round trip of the server's
        clock (plus the drift of this machine's clock since the last measurement,
        at most :data:`CLOCK_REFRESH` seconds ago). While the database is
        unreachable the last offset is kept; with none measured yet this raises.
        """
        if self._offset is None or time.monotonic() - self._offset_at >= CLOCK_REFRESH:
            self._refresh_clock()
        assert self._offset is not None
        return _wall() + self._offset

    def _refresh_clock(self) -> None:
        if not self._clock_lock.acquire(blocking=self._offset is None):
            return  # another thread is measuring; the last offset is good enough
        try:
            if self._offset is not None and time.monotonic() - self._offset_at < CLOCK_REFRESH:
                return
            try:
                with self._connection() as conn:
                    self._measure_clock_on(conn)
            except (StoreUnavailableError, psycopg.Error):
                if self._offset is None:
                    raise
                self._offset_at = time.monotonic() - CLOCK_REFRESH + 1.0  # retry in 1 s
        finally:
            self._clock_lock.release()

    # -- reads -----------------------------------------------------------------------

    def get(self, job_id: str) -> Stored | None:
        with self._read() as conn:
            if conn is None:
                return None
            row = conn.execute(
                "SELECT doc, rev FROM cronkit_jobs WHERE id = %s", (job_id,)
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
                ).fetchall()
        return [Stored(json.loads(doc), rev) for doc, rev in rows]

    def next_wake(self) -> datetime | None:
        with self._read() as conn:
            if conn is None:
                return None
            row = conn.execute(
                "SELECT min(wake_at) FROM cronkit_jobs WHERE wake_at IS NOT NULL"
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
        return {"backend": "postgresql", "url": self.url, "location": self.url,
                "schema_version": self._found_version if self._schema_ok else None,
                "jobs": jobs}

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
        with self._tx() as conn:
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
        return (json.dumps(new, separators=(",", ":")), wake_time(new, ttl), new.get("key"),
                job_id, rev)

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
        with self._tx() as conn:
            # Lock first, skipping rows another transaction holds: that node is
            # swapping them now, so ours would lose anyway — and we never wait.
            locked = {r[0] for r in conn.execute(
                "SELECT id FROM cronkit_jobs WHERE id = ANY(%s::text[]) "
                "FOR UPDATE SKIP LOCKED",
                (sorted({s.job_id for s in swaps}),),
            )}
            todo = [i for i, s in enumerate(swaps) if s.job_id in locked and self._is_rev(s.rev)]
            if todo:
                cur = conn.cursor()
                # In order, one pipeline: a second swap of one revision in the batch loses.
                cur.executemany(self._UPDATE, [params[i] for i in todo], returning=True)
                for i in todo:
                    row = cur.fetchone()
                    if row is not None:
                        out[i] = Stored(swaps[i].new, row[0])
                    cur.nextset()
            rows = [r for s, o in zip(swaps, out, strict=True) if o is not None for r in s.rows]
            if rows:
                # Same transaction: a won claim without its ledger row cannot exist.
                ledger_sql.insert_rows(_LedgerConn(conn), rows, KEEP_PER_JOB)
        if any(o is not None for o in out):
            self._wrote()
        return out

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
