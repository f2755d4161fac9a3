"""SQLite contention is recognised by its result code, not by its message text."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cron.sqlitewal import is_busy


def test_a_held_write_lock_is_busy_and_other_errors_are_not(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    holder = sqlite3.connect(path, timeout=0, isolation_level=None)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN IMMEDIATE")
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            busy = exc
        else:
            raise AssertionError("a second writer got the lock")
        assert is_busy(busy)
        try:
            other.execute("SELECT * FROM no_such_table")
        except sqlite3.OperationalError as exc:
            missing = exc
        assert not is_busy(missing)
        # Same class, same kind of words: only the code tells them apart.
        assert not is_busy(sqlite3.OperationalError("database is locked"))
    finally:
        other.close()
        holder.close()
