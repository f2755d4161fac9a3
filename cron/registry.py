"""The ticker registry: one row per active ticker, in the store's ledger database (SPEC §11).

Every active ticker upserts its row (host, pid, process start, home, provider,
state, started, heartbeat, last success, last error) after each iteration,
stamped by the store's clock (:meth:`cron.stores.JobStore.clock` — the
database server's on a shared store), and deletes its own row when it stops.
A row is keyed by the ticker's node id, ``host:pid:process start``, so no
ticker ever rewrites or removes another's — except a predecessor's that is
provably dead: registering, a ticker deletes the rows of its own host and home
whose process is gone (a ``kill -9`` leaves its row behind). The proof is
twofold: this process holds the home's ticker lock (``flock``, read back from
``/proc/locks``), so no other ticker of this home on this host is active; and
the row's pid is not alive, or is now a different process (its start time
differs). On a shared store ``status`` lists every row: a node whose heartbeat
is older than the stale bound is named with a ``✗`` (its pid means nothing on
another host, so age is the only judge).

Best-effort like the heartbeat files: a registry write that fails is logged,
never raised — the loop whose liveness it reports must not die of it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cron import paths, procinfo
from cron.claim import parse_ts
from cron.schedule import to_iso
from cron.stores import JobStore

if TYPE_CHECKING:
    from cron.ledgerdb import SqlConn

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


def _holds_flock(path: Path) -> bool:
    """Does this process hold an exclusive ``flock`` on ``path``? Read from ``/proc/locks``
    (no side effect: probing by taking the lock could make a starting ticker stand by).
    False where there is no ``/proc/locks`` — then nothing is proven."""
    try:
        ino = path.stat().st_ino
        text = Path("/proc/locks").read_text()
    except OSError:
        return False
    pid = str(os.getpid())
    for line in text.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF" (a "->" line is a waiter).
        f = line.split()
        if len(f) >= 6 and f[1] == "FLOCK" and f[3] == "WRITE" and f[4] == pid:
            # The device as /proc/locks prints it may not be stat's (overlay filesystems);
            # the inode, among this process's own few flocks, identifies the file.
            if f[5].rsplit(":", 1)[-1] == str(ino):
                return True
    return False


def _provably_dead(pid: int, process_start: str | None) -> bool:
    """Is the process a row of this host names gone: not alive, or its pid reused?"""
    if not procinfo.pid_alive(pid):
        return True
    return process_start is not None and procinfo.process_start_time(pid) != process_start


class Registration:
    """This ticker's row: :meth:`beat` after every iteration, :meth:`remove` when it stops.

    Made by the active ticker while it holds the home's ticker lock; making it deletes
    the rows a dead predecessor of this host and home left (:meth:`clear_dead_predecessors`).
    """

    def __init__(self, store: JobStore, *, provider: str, now: datetime | None = None) -> None:
        self.store = store
        self.node_id = node_id()
        self.host = procinfo.hostname()
        self.pid = os.getpid()
        # Read once: this process's start time does not change (beat runs every iteration).
        self.process_start = procinfo.process_start_time(self.pid)
        self.home = str(paths.home())
        self.provider = provider
        self.started_at = to_iso(now if now is not None else store.clock())
        self.clear_dead_predecessors()

    def clear_dead_predecessors(self) -> list[str]:
        """Delete the rows of this host and home whose process is provably dead; returns
        their node ids. Only while this process holds the home's ticker lock (no other
        ticker of this home on this host can be alive then); a row whose pid is alive as
        the same process is kept even so. Best-effort: a failure is logged."""
        try:
            if not _holds_flock(paths.ticker_lock_path()):
                return []
            ledger = self.store.ledger()
            with ledger.read() as conn:
                if conn is None or not ledger.columns(conn, "tickers"):
                    return []
                rows = conn.execute(
                    "SELECT node_id, pid, process_start FROM tickers "
                    "WHERE host = ? AND home = ? AND node_id <> ?",
                    (self.host, self.home, self.node_id),
                ).fetchall()
            dead = [str(r[0]) for r in rows if _provably_dead(int(r[1]), r[2])]
            if dead:

                def delete(conn: SqlConn) -> None:
                    for node in dead:
                        conn.execute("DELETE FROM tickers WHERE node_id = ?", (node,))

                self.store.ledger().transact(delete)
                log.info(
                    "removed the registry rows of dead tickers of this home: %s", ", ".join(dead)
                )
            return dead
        except Exception:
            log.warning("could not clear dead tickers' registry rows", exc_info=True)
            return []

    def beat(self, *, ok: bool, error: str | None = None, now: datetime | None = None) -> None:
        """Record an iteration: ``ok`` (a clean tick) or failing with ``error``."""
        at = to_iso(now if now is not None else self.store.clock())
        row = (
            self.node_id,
            self.host,
            self.pid,
            self.process_start,
            self.home,
            self.provider,
            "running" if ok else "failing",
            self.started_at,
            at,
            at if ok else None,
            None if ok else error,
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
        out.append(
            TickerNode(
                node_id=str(r[0]),
                host=str(r[1]),
                pid=int(r[2]),
                process_start=r[3],
                home=r[4],
                provider=r[5],
                state=str(r[6]),
                started_at=started,
                heartbeat_at=beat,
                success_at=parse_ts(r[9]) if r[9] else None,
                last_error=r[10],
            )
        )
    return out
