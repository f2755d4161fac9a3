"""Reaching a PostgreSQL store's database: the URL, the per-process pool, losing and
regaining the database, the schema check, and the database's clock.

:class:`PgConnections` is the base of :class:`cron.stores.postgres.PostgresJobStore`:
everything that gets a connection — ``_connection`` (pooled, autocommit),
``_tx`` (one transaction, the schema created first), ``_read`` (None while there
is no schema: a read creates none) — and :meth:`~PgConnections.clock`. An
unreachable database at open or on first use is a
:class:`~cron.errors.StoreConfigError`; losing it later makes operations raise
:class:`~cron.errors.StoreUnavailableError` and drops the pool; while down, each
operation first probes with one direct connection (failing fast), and the first
probe that succeeds brings up a fresh pool.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from cron.errors import SchemaVersionError, StoreConfigError, StoreUnavailableError
from cron.stores import _pgproc
from cron.stores._pgproc import _CONNECTIONS, _Proc
from cron.stores._pgschema import SCHEMA_VERSION, Conn, _schema_version, create_schema
from cron.urls import mask_url

# Logged under the store's name: the gateway's log lines name it.
log = logging.getLogger("cron.stores.postgres")

CLOCK_REFRESH = 5.0
"""Seconds between measurements of the database clock's offset."""
CLOCK_SAMPLES = 3
"""Round trips per measurement at most; the one with the shortest trip is used."""
CLOCK_GOOD = 0.0005
"""A sample within this many seconds (half its round trip) ends a measurement early."""
CLOCK_DRIFT = 5e-4
"""Seconds per second a kept offset's error is assumed to grow (clock drift and slew)."""
CHECK_IDLE = 1.0
"""A pooled connection idle longer than this is checked (an empty query) before use."""
CONNECT_TIMEOUT = 5
POOL_MIN, POOL_MAX, POOL_TIMEOUT = 1, 10, 10.0


def _wall() -> datetime:
    """This machine's clock (the seam the database clock's offset is measured against)."""
    return datetime.now(UTC)


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


class PgConnections:
    """The connection half of a PostgreSQL store (see the module docstring)."""

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
        self._offset: timedelta | None = None
        self._offset_at = 0.0  # when the offset was last measured (kept or not)
        self._offset_err = 0.0  # the kept offset's error bound when measured, seconds
        self._offset_measured = 0.0
        self._clock_lock = threading.Lock()

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
        conninfo = urlunsplit(
            (parts.scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment)
        )
        try:
            psycopg.conninfo.conninfo_to_dict(conninfo)
        except psycopg.Error as exc:
            raise StoreConfigError(url, f"malformed URL: {self._scrub(str(exc), url)}") from None
        return conninfo, own

    def _int_option(self, options: dict[str, str], name: str, default: int, *, minimum: int) -> int:
        if name not in options:
            return default
        try:
            value = int(options[name])
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise StoreConfigError(
                self._url, f"{name} must be an integer >= {minimum}, got {options[name]!r}"
            )
        return value

    def _float_option(self, options: dict[str, str], name: str, default: float) -> float:
        if name not in options:
            return default
        try:
            value = float(options[name])
        except ValueError:
            value = 0.0
        if not value > 0:
            raise StoreConfigError(
                self._url, f"{name} must be a number of seconds > 0, got {options[name]!r}"
            )
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
        # Through the module: a forked child replaces the lock (_pgproc._after_fork_in_child).
        with _pgproc._FORK_LOCK:
            if self._proc.pid != os.getpid():
                self._stale.append(self._proc)
                self._proc = _Proc()
            return self._proc

    def _connect_direct(self, *, listen: bool = False) -> Conn:
        """One connection outside the pool (first contact, probes, the listener)."""
        kwargs = dict(self._kwargs)
        if listen:
            kwargs.update(
                keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3
            )
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
                        self._conninfo,
                        kwargs=self._kwargs,
                        min_size=self._pool_min,
                        max_size=self._pool_max,
                        open=False,
                        configure=self._configure,
                        check=self._check,
                        timeout=self._pool_timeout,
                        max_idle=60.0,
                        reconnect_timeout=30.0,
                        name=f"cronkit-{proc.pid}",
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

    def _lost(
        self,
        proc: _Proc,
        pool: ConnectionPool[Conn],
        exc: BaseException,
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
                    self._url,
                    f"no free connection within {self._pool_timeout:g}s "
                    f"(pool_max={self._pool_max})",
                )
        with proc.lock:
            if proc.pool is pool:
                proc.pool = None
                proc.down = True
                threading.Thread(
                    target=pool.close, kwargs={"timeout": 1.0}, name="cronkit-pg-close", daemon=True
                ).start()
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
        # The best of a few round trips: a sample's error is at most half its round trip,
        # and one slow trip (a loaded machine) would otherwise skew every tick's "now",
        # and with it every node's sleep, for CLOCK_REFRESH seconds.
        best: tuple[float, timedelta] | None = None
        for _ in range(CLOCK_SAMPLES):
            t0 = _wall()
            row = conn.execute("SELECT clock_timestamp()").fetchone()
            t1 = _wall()
            assert row is not None
            half = (t1 - t0) / 2
            if best is None or half.total_seconds() < best[0]:
                best = (half.total_seconds(), row[0] - (t0 + half))
            if best[0] <= CLOCK_GOOD:
                break
        assert best is not None
        err, offset = best
        now = time.monotonic()
        self._offset_at = now
        if self._offset is not None:
            # Keep the offset we have while it is still the better bound (its error grows
            # with CLOCK_DRIFT) — unless the two disagree beyond both bounds: a clock
            # was stepped, and the new sample is the only one that can be right.
            kept = self._offset_err + CLOCK_DRIFT * (now - self._offset_measured)
            apart = abs((offset - self._offset).total_seconds())
            if kept < err and apart <= kept + err:
                return
        self._offset, self._offset_err, self._offset_measured = offset, err, now

    def clock(self) -> datetime:
        """The database's clock: this machine's plus an offset measured every few seconds.

        The offset is ``clock_timestamp()`` minus the midpoint of the round trip
        that read it — the shortest of up to :data:`CLOCK_SAMPLES` trips, kept
        over later measurements with a longer trip while its error bound (half
        its trip plus :data:`CLOCK_DRIFT` per second since) is the smaller — so
        the result is within that bound of the server's clock. While the database is
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


__all__ = ["PgConnections"]
