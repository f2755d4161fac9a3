"""Opening SQLite files in WAL mode safely when several processes open them at once."""

from __future__ import annotations

import sqlite3
import time


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Is this SQLite's "database is locked" / "busy" conflict (worth a retry)?"""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


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
