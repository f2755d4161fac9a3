"""The SQL database a store keeps its ledger in: runs, job events, replay record, tickers.

Every store has one (:meth:`cron.stores.JobStore.ledger`): ``executions.db``
beside ``jobs.json``, the store's own file for SQLite, the store's database for
PostgreSQL. :mod:`cron.executions`, :mod:`cron.audit`, :mod:`cron.webhook` and
the ticker registry talk to it through this small interface, so the ledger is
behind the store seam like the jobs are.

The SQL they send is written once for both dialects: ``?`` placeholders (a
PostgreSQL ledger translates them), ``INSERT ... ON CONFLICT (...) DO
NOTHING / DO UPDATE SET c = excluded.c`` instead of ``INSERT OR IGNORE`` /
``OR REPLACE``, a ``rowid`` column for insertion order (SQLite's own; an
identity column on PostgreSQL), timestamps as ISO-8601 UTC text. Rows index by
position and by column name (``row[0]``, ``row["job_id"]``, ``dict(row)``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from cron.groupcommit import GroupCommit, Pending
from cron.sqlitewal import WalFile

T = TypeVar("T")


class SqlCursor(Protocol):
    """What a ledger ``execute`` returns (a DB-API cursor)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class SqlConn(Protocol):
    """A connection inside :meth:`LedgerDB.read` / :meth:`LedgerDB.write`."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> SqlCursor: ...


@dataclass
class _Op(Pending):
    fn: Callable[[SqlConn], Any]
    result: Any = None
    error: Exception | None = None


class LedgerDB(ABC):
    """One SQL database holding a store's ledger tables. Each method's docstring is its contract.

    Required: :meth:`read`, :meth:`write`, :meth:`exists`, :meth:`columns`,
    :attr:`dialect`, :attr:`location`. :meth:`transact` has a correct default
    (group commit with one savepoint per caller).
    """

    dialect: str = "sqlite"
    """``sqlite`` or ``postgresql``: the few statements that differ branch on it."""

    def __init__(self) -> None:
        # Writers of this process that arrive together share one transaction.
        self._writes: GroupCommit[_Op] = GroupCommit(self._write_ops)

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the ledger is, for messages (a file path, or a URL with the password masked)."""

    @abstractmethod
    def read(self) -> AbstractContextManager[SqlConn | None]:
        """A connection for reads, or None while the ledger does not exist (reads create none)."""

    @abstractmethod
    def write(self) -> AbstractContextManager[SqlConn]:
        """One transaction (schema created on first use); rolled back if the block raises."""

    @abstractmethod
    def exists(self) -> bool:
        """Does the ledger exist yet (has anything ever been written)?"""

    @abstractmethod
    def columns(self, conn: SqlConn, table: str) -> set[str]:
        """The column names of ``table`` (empty if there is no such table)."""

    def transact(self, fn: Callable[[SqlConn], T]) -> T:
        """Run ``fn(conn)`` in a write transaction shared with concurrent callers of this process.

        Each caller's ``fn`` runs in its own savepoint: one that raises an
        ``Exception`` is rolled back alone and its caller gets the exception;
        the others still commit.
        """
        op = self._writes.submit(_Op(fn))
        if op.error is not None:
            raise op.error
        result: T = op.result
        return result

    def _write_ops(self, batch: list[_Op]) -> None:
        with self.write() as conn:
            for op in batch:
                conn.execute("SAVEPOINT op")
                try:
                    op.result = op.fn(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO SAVEPOINT op")
                    op.error = exc
                conn.execute("RELEASE SAVEPOINT op")

    def close(self) -> None:
        """Release this thread's connections. The default holds none."""
        return None


class SqliteLedger(LedgerDB):
    """A ledger in a SQLite file: WAL, ``BEGIN IMMEDIATE`` writes, connections per thread."""

    dialect = "sqlite"

    def __init__(
        self,
        path: Callable[[], Path],
        schema: str,
        *,
        synchronous: str = "NORMAL",
        migrate: Callable[[sqlite3.Connection], None] | None = None,
        timeout: float = 30.0,
    ) -> None:
        super().__init__()
        self._path = path
        self._wal = WalFile(
            path,
            schema,
            synchronous=synchronous,
            row_factory=sqlite3.Row,
            timeout=timeout,
            migrate=migrate,
        )

    @property
    def path(self) -> Path:
        return self._path()

    @property
    def location(self) -> str:
        return str(self._path())

    def exists(self) -> bool:
        return self._path().exists()

    @contextlib.contextmanager
    def read(self) -> Iterator[SqlConn | None]:
        if not self._path().exists():
            yield None
            return
        with self._wal.connect() as conn:
            yield conn

    def connect(self) -> AbstractContextManager[sqlite3.Connection]:
        """This thread's connection, creating the file and its schema if missing."""
        return self._wal.connect()

    def write(self) -> AbstractContextManager[SqlConn]:
        return self._wal.transaction()

    def columns(self, conn: SqlConn, table: str) -> set[str]:
        return {str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")}

    def close(self) -> None:
        self._wal.close_thread_connections()
