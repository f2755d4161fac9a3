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
``cronkit.db``. :class:`Databases` makes them ahead and drops them behind in a
thread, off the tests' critical path.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

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
        raise ValueError(f"{SUITE_ENV}={value!r}: expected one of {SUITE_STORES[1:]} or unset")
    return value


def on_postgres() -> bool:
    return suite_store() == "postgres"


class Databases:
    """Fresh databases of one server: ``take()`` hands one out, ``give_back()`` drops it.

    A daemon thread keeps ``ahead`` databases made and drops returned ones, so
    a test waits for neither (``CREATE DATABASE`` and ``DROP`` take tens of ms
    each). A database is dropped ``WITH (FORCE)``: sessions a test left behind
    (a killed child's) cannot keep it alive.
    """

    def __init__(self, server: PostgresServer, *, ahead: int = 2) -> None:
        self._server = server
        self._ready: queue.Queue[str | BaseException] = queue.Queue()
        self._work: queue.Queue[str | None] = queue.Queue()
        self._ahead = ahead
        self._wanted = threading.Semaphore(ahead)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="test-databases", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            # Drops first: they free the server's resources; then top the stock up.
            try:
                url = self._work.get(timeout=0.05)
            except queue.Empty:
                url = ""
            if url is None:
                return
            if url:
                with contextlib.suppress(Exception):
                    self._server.drop_database(url)
                continue
            if self._wanted.acquire(blocking=False):
                try:
                    self._ready.put(self._server.create_database(empty=True))
                except BaseException as exc:  # the taker raises it
                    self._ready.put(exc)

    def take(self) -> str:
        """A fresh empty database's URL (blocks until one is made)."""
        got = self._ready.get(timeout=120)
        self._wanted.release()
        if isinstance(got, BaseException):
            raise got
        return got

    def give_back(self, url: str) -> None:
        """Drop ``url`` (in the background)."""
        self._work.put(url)

    def close(self) -> None:
        """Stop the thread; drop what was made and not handed out."""
        if self._closed:
            return
        self._closed = True
        self._work.put(None)
        self._thread.join(60)
        while True:
            try:
                got = self._ready.get_nowait()
            except queue.Empty:
                break
            if isinstance(got, str):
                with contextlib.suppress(Exception):
                    self._server.drop_database(got)
        while True:
            try:
                url = self._work.get_nowait()
            except queue.Empty:
                break
            if url:
                with contextlib.suppress(Exception):
                    self._server.drop_database(url)


_databases: Databases | None = None


def install(databases: Databases | None) -> None:
    """Make :func:`fresh_store_env` draw from ``databases`` (the session fixture does)."""
    global _databases
    _databases = databases


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A fresh database for one test or example; the store closed and it dropped after."""
    if _databases is None:
        raise RuntimeError(f"{SUITE_ENV}=postgres but no test server is installed "
                           "(tests/conftest.py's suite_databases fixture does it)")
    url = _databases.take()
    try:
        yield url
    finally:
        from cron.store import set_store

        set_store(None)  # close this process's pools before the database goes
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
