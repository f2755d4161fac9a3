"""This process's run ledger: where it is, how a write transaction is taken, its time text.

The ledger is the configured store's (:meth:`cron.stores.JobStore.ledger`):
``executions.db`` beside ``jobs.json``, the SQLite store's own file, or the
PostgreSQL database. Every ledger writer — :mod:`cron.executions` (run rows),
:mod:`cron.recovery` (settling a dead owner's rows) and :mod:`cron.job_events`
(the audit's event rows) — goes through :func:`write_ledger` / ``_transact``, so
concurrent writers of this process share one transaction, each in its own savepoint.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from cron.ledgerdb import LedgerDB, SqlConn

T = TypeVar("T")


def _iso(dt: datetime) -> str:
    """Aware datetime -> ISO-8601 UTC text with ``+00:00``; naive input is rejected."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"expected an aware datetime, got naive {dt!r}")
    return dt.astimezone(UTC).isoformat()


def _now_iso(now: datetime | None) -> str:
    return _iso(now if now is not None else datetime.now(UTC))


def _opt_iso(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return _iso(value)


def _db() -> LedgerDB:
    # The configured store says where its ledger lives: executions.db beside
    # jobs.json, the SQLite store's own file, or the PostgreSQL database.
    from cron.store import get_store

    return get_store().ledger()


def _transact(fn: Callable[[SqlConn], T]) -> T:
    """Run ``fn(conn)`` inside a write transaction (shared with concurrent writers)."""
    return _db().transact(fn)


def write_ledger(fn: Callable[[SqlConn], T]) -> T:
    """Run ``fn(conn)`` in a ledger write transaction (e.g. :mod:`cron.job_events`' rows)."""
    return _transact(fn)


__all__ = ["write_ledger"]
