"""The ticker registry: one row per active ticker, in the store's ledger database (SPEC §11).

Every active ticker upserts its row (host, pid, process start, home, provider,
state, started, heartbeat, last success, last error) after each iteration,
stamped by the store's clock (:meth:`cron.stores.JobStore.clock` — the
database server's on a shared store), and deletes its own row when it stops.
A row is keyed by the ticker's node id, ``host:pid:process start``, so no
ticker ever rewrites or removes another's. On a shared store ``status`` lists
every row: a node whose heartbeat is older than the stale bound is named with
a ``✗`` (its pid means nothing on another host, so age is the only judge).

Best-effort like the heartbeat files: a registry write that fails is logged,
never raised — the loop whose liveness it reports must not die of it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from cron import paths, procinfo
from cron.claim import parse_ts
from cron.schedule import to_iso
from cron.stores import JobStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TickerNode:
    """One registered ticker, as ``status`` shows it."""

    node_id: str
    host: str
    pid: int
    process_start: str | None
    home: str | None
    provider: str | None
    state: str
    started_at: datetime
    heartbeat_at: datetime
    success_at: datetime | None
    last_error: str | None

    def heartbeat_age(self, now: datetime) -> float:
        return max(0.0, (now - self.heartbeat_at).total_seconds())


def node_id() -> str:
    """This process's node id: ``host:pid:process start`` (unique across hosts and pid reuse)."""
    return procinfo.owner_id()


_UPSERT = """
INSERT INTO tickers (node_id, host, pid, process_start, home, provider, state, started_at,
                     heartbeat_at, success_at, last_error)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (node_id) DO UPDATE SET
    state = excluded.state,
    heartbeat_at = excluded.heartbeat_at,
    success_at = COALESCE(excluded.success_at, tickers.success_at),
    last_error = excluded.last_error,
    provider = excluded.provider
"""


class Registration:
    """This ticker's row: :meth:`beat` after every iteration, :meth:`remove` when it stops."""

    def __init__(self, store: JobStore, *, provider: str, now: datetime | None = None) -> None:
        self.store = store
        self.node_id = node_id()
        self.host = procinfo.hostname()
        self.pid = os.getpid()
        self.home = str(paths.home())
        self.provider = provider
        self.started_at = to_iso(now if now is not None else store.clock())

    def beat(self, *, ok: bool, error: str | None = None, now: datetime | None = None) -> None:
        """Record an iteration: ``ok`` (a clean tick) or failing with ``error``."""
        at = to_iso(now if now is not None else self.store.clock())
        row = (
            self.node_id, self.host, self.pid, procinfo.process_start_time(self.pid),
            self.home, self.provider, "running" if ok else "failing", self.started_at,
            at, at if ok else None, None if ok else error,
        )
        try:
            self.store.ledger().transact(lambda conn: conn.execute(_UPSERT, row))
        except Exception:
            log.warning("could not write this ticker's registry row", exc_info=True)

    def remove(self) -> None:
        """Delete this ticker's own row (never another's)."""
        try:
            self.store.ledger().transact(
                lambda conn: conn.execute("DELETE FROM tickers WHERE node_id = ?", (self.node_id,))
            )
        except Exception:
            log.warning("could not remove this ticker's registry row", exc_info=True)


def list_nodes(store: JobStore) -> list[TickerNode]:
    """Every registered ticker, oldest start first. Raises what the ledger raises."""
    ledger = store.ledger()
    with ledger.read() as conn:
        if conn is None or not ledger.columns(conn, "tickers"):
            return []
        rows = conn.execute(
            "SELECT node_id, host, pid, process_start, home, provider, state, started_at, "
            "heartbeat_at, success_at, last_error FROM tickers ORDER BY started_at, node_id"
        ).fetchall()
    out: list[TickerNode] = []
    for r in rows:
        started, beat = parse_ts(r[7]), parse_ts(r[8])
        if started is None or beat is None:
            continue
        out.append(TickerNode(
            node_id=str(r[0]), host=str(r[1]), pid=int(r[2]), process_start=r[3], home=r[4],
            provider=r[5], state=str(r[6]), started_at=started, heartbeat_at=beat,
            success_at=parse_ts(r[9]) if r[9] else None, last_error=r[10],
        ))
    return out


def prune_stale(store: JobStore, *, older_than: float, now: datetime | None = None) -> int:
    """Delete rows whose heartbeat is older than ``older_than`` seconds (dead nodes long gone)."""
    at = now if now is not None else store.clock()
    cut = to_iso(datetime.fromtimestamp(at.timestamp() - older_than, UTC))
    cur = store.ledger().transact(
        lambda conn: conn.execute("DELETE FROM tickers WHERE heartbeat_at < ?", (cut,))
    )
    return int(cur.rowcount)
