"""SQLite files in WAL mode: private from the first byte, safe to open from many processes.

Both SQLite files cronkit keeps (the run ledger and the webhook's replay record)
go through :class:`WalFile`, so they share one way of creating, initialising
and caching connections.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cron import paths


def is_busy(exc: sqlite3.Error) -> bool:
    """Is this SQLite's "database is locked" / "busy" conflict (worth a retry)?

    Decided on the result code (``SQLITE_BUSY`` / ``SQLITE_LOCKED``, any
    extended code), never on the message text.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def initialise_wal(conn: sqlite3.Connection, schema: str, *, timeout: float) -> None:
    """Switch the file to WAL and run ``schema``, retrying while another process does.

    Changing the journal mode needs an exclusive lock and SQLite reports a
    conflict at once instead of calling the busy handler, so two connections
    opening a fresh file together would otherwise see "database is locked".
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            # journal_mode is persistent in the file: only the first opener switches it.
            if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(schema)
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


class _WriterLocks:
    """One lock per database file for the writers of this process.

    SQLite already serialises writers, but a writer that finds the file locked
    sleeps in its busy handler (1, 2, 5, 10 ms ...). With the jobs, the ledger
    and the replay record in one file, this process's own writers would keep
    meeting each other there; queued on a thread lock they hand over at once.
    Per process by nature — so is SQLite's lock — hence one registry here.
    """

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._by_name: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def for_path(self, path: Path) -> threading.Lock:
        name = str(path)
        lock = self._by_name.get(name)
        if lock is not None:
            return lock
        key = os.path.realpath(path)  # two names of one file share its lock
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
            self._by_name[name] = lock
            return lock


_writers = _WriterLocks()


class WalFile:
    """One SQLite file: created 0600, switched to WAL with ``schema`` once per file,
    autocommit connections cached per thread.

    ``path`` is called on every :meth:`connect` (``CRONKIT_HOME`` may change, in
    tests). ``synchronous`` is the ``PRAGMA synchronous`` of every connection:
    ``FULL`` (SQLite's default) fsyncs every commit; ``NORMAL`` with WAL is
    crash-safe but a power cut may lose the newest commits. ``migrate(conn)``
    runs after ``schema`` once per file and process: it brings a file an older
    build created up to date (it must be idempotent; other processes may race it).
    """

    MAX_CACHED = 4
    """Connections kept per thread (one per file the thread has used lately)."""

    def __init__(
        self,
        path: Callable[[], Path],
        schema: str,
        *,
        synchronous: str = "FULL",
        row_factory: Callable[..., object] | None = None,
        timeout: float = 30.0,
        migrate: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self._path = path
        self._schema = schema
        self._migrate = migrate
        self._synchronous = synchronous
        self._row_factory = row_factory
        self.timeout = timeout
        self._local = threading.local()
        self._initialised: set[tuple[str, int, int]] = set()  # (path, dev, inode)
        self._lock = threading.Lock()

    def _ensure_file(self, path: Path) -> None:
        # Created here so it is 0600 from the first byte; SQLite would use the
        # umask's mode. The -wal/-shm side files copy this mode.
        paths.ensure_dir(path.parent)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, paths.FILE_MODE))

    def _open(self, path: Path, key: tuple[str, int, int]) -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=self.timeout, isolation_level=None)
        try:
            if self._row_factory is not None:
                conn.row_factory = self._row_factory
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            if key not in self._initialised:
                initialise_wal(conn, self._schema, timeout=self.timeout)
                if self._migrate is not None:
                    self._migrate(conn)
                with self._lock:
                    self._initialised.add(key)
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection to the file (opened, and the schema ensured, on first use).

        Cached per thread and per process (never shared across a fork or between
        threads): opening and closing one per call costs milliseconds, because
        closing the last connection checkpoints the WAL. Keyed by inode too: a
        file deleted and recreated gets a new connection and its schema.
        """
        path = self._path()
        try:
            st = os.stat(path)  # the common case: the file exists; one syscall
        except FileNotFoundError:
            self._ensure_file(path)
            st = os.stat(path)
        key = (str(path), st.st_dev, st.st_ino, os.getpid())
        cache: dict[tuple[str, int, int, int], sqlite3.Connection] | None = getattr(
            self._local, "conns", None
        )
        if cache is None:
            cache = {}
            self._local.conns = cache
        conn = cache.get(key)
        if conn is None:
            conn = self._open(path, key[:3])
            while len(cache) >= self.MAX_CACHED:
                with contextlib.suppress(sqlite3.Error):
                    cache.pop(next(iter(cache))).close()
            cache[key] = conn
        try:
            yield conn
        except sqlite3.DatabaseError:
            # A broken connection must not be handed out again.
            cache.pop(key, None)
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            raise

    def close_thread_connections(self) -> None:
        """Close this thread's cached connections (others close with their threads)."""
        cache = getattr(self._local, "conns", None)
        if cache:
            for conn in cache.values():
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            cache.clear()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` on this thread's connection; rolled back if the
        block raises. Writers of this process to the same file queue on one lock first."""
        path = self._path()
        with _writers.for_path(path), self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
