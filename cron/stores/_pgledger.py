"""The run ledger in a PostgreSQL store's database (:class:`PostgresLedger`).

The ledger code speaks portable SQL with ``?`` placeholders and reads rows by
position or by column name, like ``sqlite3``; :class:`_LedgerConn` translates
the placeholders and :class:`_Row` gives the rows both faces. The ledger shares
the store's pool and transactions. Importable from :mod:`cron.stores.postgres`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, SupportsIndex, overload

from cron.ledgerdb import LedgerDB, SqlConn, SqlCursor, _Op
from cron.stores._pgconn import PgConnections
from cron.stores._pgschema import Conn

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
    return type(
        "Row",
        (_Row,),
        {"_names": names, "_index": {n: i for i, n in enumerate(names)}, "__slots__": ()},
    )


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

    def __init__(self, store: PgConnections) -> None:
        super().__init__()
        self._store = store
        self._columns: dict[str, frozenset[str]] = {}

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

    def _write_ops(self, batch: list[_Op]) -> None:
        if len(batch) != 1:
            super()._write_ops(batch)
            return
        # A lone writer (the common case) needs no savepoint: rolling back the whole
        # transaction undoes exactly its writes, as ROLLBACK TO SAVEPOINT would — two
        # round trips fewer for every run start, run end and registry beat.
        (op,) = batch
        try:
            with self.write() as conn:
                op.result = op.fn(conn)
        except Exception as exc:
            op.error = exc

    def columns(self, conn: SqlConn, table: str) -> set[str]:
        # Read once per table from pg_catalog (information_schema's view costs far more):
        # a schema version fixes the columns, and a newer one is refused. A table not
        # there yet is asked again next time.
        found = self._columns.get(table)
        if found is None:
            rows = conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(?) "
                "AND attnum > 0 AND NOT attisdropped",
                (table,),
            )
            found = frozenset(str(row[0]) for row in rows)
            if found:
                self._columns[table] = found
        return set(found)


__all__ = ["PostgresLedger"]
