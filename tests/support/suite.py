"""Which store the whole suite runs on: ``CRONKIT_TEST_STORE`` (issue #14).

``CRONKIT_STORE`` picks a store by URL, which is enough for ``json`` and
``sqlite``: each test's fresh ``CRONKIT_HOME`` holds a fresh store. A
PostgreSQL store lives outside the home, so ``CRONKIT_TEST_STORE=postgres``
gives every test (the ``home`` fixture) and every Hypothesis example
(``tests.properties._home.fresh_home``) a database of its own on the session's
throwaway server, and puts its URL in ``CRONKIT_STORE`` — child processes
inherit it, like they inherit ``CRONKIT_STORE=sqlite``.

The databases are empty (no cronkit schema): a store's first write creates
it, as on a new production database, so "reads create nothing" and "bad input
creates no store" hold on PostgreSQL as they do for a missing ``jobs.json`` or
``cronkit.db``. :class:`Databases` resets used ones and keeps some ready in a
thread, off the tests' critical path.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from cron.testing.postgres import PostgresServer

SUITE_ENV = "CRONKIT_TEST_STORE"
SUITE_STORES = ("", "postgres")


def suite_store() -> str:
    """``""`` (the store ``CRONKIT_STORE`` names) or ``postgres``; anything else is an error."""
    value = os.environ.get(SUITE_ENV, "").strip().lower()
    if value == "postgresql":
        value = "postgres"
    if value not in SUITE_STORES:
        raise ValueError(f"{SUITE_ENV}={value!r}: expected 'postgres' or unset")
    return value


def on_postgres() -> bool:
    return suite_store() == "postgres"


class Databases:
    """Fresh empty databases of one server: ``take()`` hands one out, ``give_back()`` returns it.

    ``CREATE DATABASE`` and ``DROP DATABASE`` cost ~100 ms of a loaded server
    each, more than many tests; so a returned database is *reset* instead, in
    a daemon thread off the tests' path: its sessions are ended, it is renamed
    (a pool or listener a test leaked cannot reconnect to the next test's
    database: its URL no longer names one) and its ``public`` schema is dropped
    and made again — empty, with no cronkit schema, as new. ``ahead`` databases
    are kept ready. Every database made here is dropped by :meth:`close`.
    """

    def __init__(self, server: PostgresServer, *, ahead: int = 3) -> None:
        self._server = server
        self._tag = f"cks_{uuid.uuid4().hex[:6]}_"
        self._names = itertools.count(1)
        self._ready: queue.Queue[str | BaseException] = queue.Queue()
        self._work: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._wanted = threading.Semaphore(ahead)
        self._lock = threading.Lock()
        self._made: set[str] = set()  # every database of ours that exists now
        self._admin: Any = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="test-databases", daemon=True)
        self._thread.start()

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._wanted.acquire(timeout=0.05):
                continue  # the stock is full
            try:
                name = self._work.get_nowait()  # reuse a returned database first
            except queue.Empty:
                name = ""
            try:
                self._ready.put(self._renew(name) if name else self._create())
            except BaseException as exc:  # the taker raises it
                self._ready.put(exc)

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """``sql`` on this thread's admin connection (reconnected once if it broke)."""
        for attempt in range(2):
            try:
                if self._admin is None or self._admin.closed:
                    self._admin = self._server.connect(autocommit=True)
                self._admin.execute(sql, params)
                return
            except Exception:
                if self._admin is not None and not self._admin.broken:
                    raise  # the statement failed, not the connection
                self._admin = None
                if attempt == 1:
                    raise

    def _create(self) -> str:
        name = f"{self._tag}{next(self._names)}"
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        with self._lock:
            self._made.add(name)
        return self._url(name)

    def _renew(self, old: str) -> str:
        """``old`` renamed, its sessions ended and its schema emptied; the new URL."""
        new = f"{self._tag}{next(self._names)}"
        for attempt in range(50):
            # Sessions a test left (a killed child's, a leaked pool) would block the rename.
            self._execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (old,),
            )
            try:
                self._execute(f'ALTER DATABASE "{old}" RENAME TO "{new}"')
                break
            except Exception:
                if attempt == 49:
                    raise
                time.sleep(0.02)
        with self._lock:
            self._made.discard(old)
            self._made.add(new)
        url = self._url(new)
        with contextlib.closing(self._server.connect(url, autocommit=True)) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
        return url

    def _url(self, name: str) -> str:
        parts = urlsplit(self._server.url)
        return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))

    # -- the tests' side -------------------------------------------------------------

    def take(self) -> str:
        """A fresh empty database's URL (blocks until one is ready)."""
        got = self._ready.get(timeout=120)
        self._wanted.release()
        if isinstance(got, BaseException):
            raise got
        return got

    def give_back(self, url: str) -> None:
        """Return ``url``'s database: it is reset in the background and handed out again."""
        self._work.put(urlsplit(url).path.lstrip("/"))

    def close(self) -> None:
        """Stop the thread; drop every database made here."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(60)
        if self._thread.is_alive():
            return  # stuck on the server: the server's own stop cleans up
        with self._lock:
            names, self._made = sorted(self._made), set()
        for name in names:
            with contextlib.suppress(Exception):
                self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()


_databases: Databases | None = None


def install(databases: Databases | None) -> None:
    """Make :func:`fresh_database` draw from ``databases`` (the session fixture does)."""
    global _databases
    _databases = databases


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A fresh empty database for one test or example; after it, this process's stores and
    the helpers' connection are closed and the database goes back to be reset."""
    if _databases is None:
        raise RuntimeError(
            f"{SUITE_ENV}=postgres but no test server is installed "
            "(tests/conftest.py's suite_databases fixture does it)"
        )
    url = _databases.take()
    try:
        yield url
    finally:
        from cron.store import set_store
        from tests.support.stores import close_direct

        set_store(None)  # close this process's pools before the database goes
        close_direct()
        _databases.give_back(url)


@contextlib.contextmanager
def fresh_store_env() -> Iterator[str | None]:
    """On ``postgres``: ``CRONKIT_STORE`` = a fresh database, restored after. Else nothing.

    For code that builds its own home per Hypothesis example (fixtures are per test).
    """
    if not on_postgres():
        yield None
        return
    saved = os.environ.get("CRONKIT_STORE")
    with fresh_database() as url:
        os.environ["CRONKIT_STORE"] = url
        try:
            yield url
        finally:
            if saved is None:
                os.environ.pop("CRONKIT_STORE", None)
            else:
                os.environ["CRONKIT_STORE"] = saved
