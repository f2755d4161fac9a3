"""What one process holds of a PostgreSQL store: its pool and pooled connections, its
``LISTEN`` thread — and how a forked child lets go of its parent's.

A forked child opens its own pool; the sockets it inherited are pointed at
``/dev/null`` (``_after_fork_in_child``) so it can never talk on, or close, its
parent's sessions. :class:`_Listener` holds one dedicated autocommit connection
doing ``LISTEN cronkit_jobs`` and reconnects with backoff; a reconnect counts
as a change.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Protocol

from psycopg_pool import ConnectionPool

from cron.stores._pgschema import CHANNEL, Conn

LISTEN_POLL = 0.1
"""The listener's longest wait for a notification before it looks at its stop flag: what
:meth:`PostgresJobStore.close` may wait for it (an idle wake-up costs one ``poll``)."""

# Logged under the store's name: the gateway's log lines name it.
log = logging.getLogger("cron.stores.postgres")


class _Connector(Protocol):
    """What the listener needs of its store (:class:`cron.stores._pgconn.PgConnections`)."""

    @property
    def url(self) -> str: ...

    def _connect_direct(self, *, listen: bool = False) -> Conn: ...

    def _reason(self, exc: BaseException) -> str: ...


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

    def __init__(self, store: _Connector, proc: _Proc) -> None:
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
                    log.warning(
                        "job store %s: lost the LISTEN connection (%s); reconnecting",
                        self._store.url,
                        self._store._reason(exc),
                    )
                    warned = True
            finally:
                self.connected = False
                self.tried.set()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
            self._stop.wait(delay)
            delay = min(delay * 2, 5.0)


__all__: list[str] = []
