"""The run ledger: lifecycle, ordering, retention, recovery, concurrency, corruption."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cron import executions, ledger_sql, paths, procinfo
from cron.ledgerdb import SqliteLedger
from cron.store import get_store


def ledger_file() -> Path:
    # executions.db beside jobs.json, or the SQLite store's own database (a test asking
    # is about that file: it uses the file_store fixture).
    return get_store().ledger_path()


T0 = datetime(2026, 11, 25, 3, 10, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


def _tok() -> str:
    return uuid.uuid4().hex


def _dead_owner() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{procinfo.hostname()}:{proc.pid}:12345"


def test_lifecycle_claim_running_finish(home: Path) -> None:
    tok = _tok()
    assert executions.record_claim(
        tok, "job1", scheduled_at=T0, source="tick", job_name="backup", now=T0
    )
    row = executions.get_execution(tok)
    assert row is not None
    assert row["status"] == "claimed"
    assert row["job_id"] == "job1"
    assert row["job_name"] == "backup"
    assert row["scheduled_at"] == "2026-11-25T03:10:00+00:00"
    assert row["claimed_at"] == "2026-11-25T03:10:00+00:00"
    assert row["owner"] == procinfo.owner_id()
    assert row["source"] == "tick"

    t1 = T0 + timedelta(seconds=1)
    assert executions.mark_running(tok, job_id="job1", now=t1)
    row = executions.get_execution(tok)
    assert row is not None
    assert row["status"] == "running"
    assert row["started_at"] == t1.isoformat()

    t2 = T0 + timedelta(seconds=5)
    assert executions.finish(tok, status="ok", output_path=home / "x.log", now=t2)
    row = executions.get_execution(tok)
    assert row is not None
    assert row["status"] == "ok"
    assert row["finished_at"] == t2.isoformat()
    assert row["output_path"] == str(home / "x.log")
    assert row["error"] is None


def test_record_claim_is_insert_or_ignore(home: Path) -> None:
    tok = _tok()
    assert executions.record_claim(tok, "j", scheduled_at=T0, source="tick", now=T0)
    executions.finish(tok, status="error", error="exit status 1", now=T0)
    assert not executions.record_claim(tok, "j", scheduled_at=T0, source="webhook", now=T0)
    row = executions.get_execution(tok)
    assert row is not None
    assert (row["status"], row["source"], row["error"]) == ("error", "tick", "exit status 1")


def test_mark_running_inserts_missing_row(home: Path) -> None:
    tok = _tok()
    assert executions.mark_running(
        tok, job_id="j", scheduled_at="2026-11-25T03:10:00+00:00", source="manual", now=T0
    )
    row = executions.get_execution(tok)
    assert row is not None
    assert row["status"] == "running"
    assert row["source"] == "manual"
    assert row["claimed_at"] is None
    assert row["started_at"] == T0.isoformat()
    assert row["owner"] == procinfo.owner_id()


def test_mark_running_never_resurrects_a_final_row(home: Path) -> None:
    tok = _tok()
    executions.record_claim(tok, "j", scheduled_at=T0, source="tick", now=T0)
    executions.finish(tok, status="ok", now=T0)
    assert not executions.mark_running(tok, job_id="j", now=T0)
    row = executions.get_execution(tok)
    assert row is not None and row["status"] == "ok"


def test_finish_claim_as_skipped(home: Path) -> None:
    tok = _tok()
    executions.record_claim(tok, "j", scheduled_at=T0, source="webhook", now=T0)
    assert executions.finish(tok, status="skipped", error="job removed", now=T0)
    row = executions.get_execution(tok)
    assert row is not None and (row["status"], row["error"]) == ("skipped", "job removed")
    with pytest.raises(ValueError):
        executions.finish(tok, status="running")


def test_finish_unknown_token_and_bad_status(home: Path) -> None:
    assert not executions.finish("nope", status="ok", now=T0)
    with pytest.raises(ValueError, match="invalid execution status"):
        executions.finish("nope", status="bogus")
    with pytest.raises(ValueError, match="invalid execution status"):
        executions.record_event("j", status="ok", scheduled_at=T0, source="tick")


def test_record_event(home: Path) -> None:
    exec_id = executions.record_event(
        "j", status="missed", scheduled_at=T0, source="tick", error="late by 3h", now=T0
    )
    assert len(exec_id) == 32 and int(exec_id, 16) >= 0
    row = executions.get_execution(exec_id)
    assert row is not None
    assert row["status"] == "missed"
    assert row["finished_at"] == T0.isoformat()
    assert row["error"] == "late by 3h"
    assert row["claimed_at"] is None and row["started_at"] is None


def test_naive_now_rejected(home: Path) -> None:
    with pytest.raises(ValueError, match="naive"):
        executions.record_claim(
            _tok(), "j", scheduled_at=None, source="t", now=datetime(2026, 1, 1)
        )


def test_list_newest_first_limit_and_filter(home: Path) -> None:
    ids = []
    for i in range(6):
        tok = _tok()
        executions.record_claim(
            tok,
            "a" if i % 2 == 0 else "b",
            scheduled_at=T0,
            source="tick",
            now=T0 + timedelta(minutes=i),
        )
        ids.append(tok)
    # Same timestamp: insertion order breaks the tie.
    tie = _tok()
    executions.record_claim(tie, "a", scheduled_at=T0, source="tick", now=T0 + timedelta(minutes=5))
    event = executions.record_event(
        "a", status="skipped", scheduled_at=T0, source="tick", now=T0 + timedelta(minutes=10)
    )
    rows = executions.list_executions()
    assert [r["id"] for r in rows] == [event, tie, *reversed(ids)]
    assert [r["id"] for r in executions.list_executions(limit=2)] == [event, tie]
    only_a = executions.list_executions("a")
    assert [r["id"] for r in only_a] == [event, tie, ids[4], ids[2], ids[0]]
    assert executions.list_executions("zzz") == []
    assert len(executions.list_executions(limit=None)) == 8
    assert set(rows[0]) == set(executions.COLUMNS)


def test_retention_keeps_newest_per_job(home: Path) -> None:
    live = _tok()
    executions.record_claim(live, "a", scheduled_at=T0, source="tick", now=T0)
    toks = []
    for i in range(1, 9):
        tok = _tok()
        executions.record_claim(
            tok,
            "a",
            scheduled_at=T0,
            source="tick",
            now=T0 + timedelta(minutes=i),
            keep_per_job=5,
        )
        executions.finish(tok, status="ok", now=T0 + timedelta(minutes=i), keep_per_job=5)
        toks.append(tok)
    other = _tok()
    executions.record_claim(other, "b", scheduled_at=T0, source="tick", now=T0)
    kept = [r["id"] for r in executions.list_executions("a", limit=None)]
    # The five newest finished rows stay; the oldest row is still live, so it survives.
    assert kept == [*reversed(toks[-5:]), live]
    assert executions.get_execution(other) is not None


def test_a_large_bound_is_pruned_in_steps_not_on_every_row(home: Path) -> None:
    # keep 30: up to a tenth more may wait (a job past its bound would otherwise pay a
    # sorted delete on every claim and every result); the next row prunes back to 30.
    keep = 30
    slack = ledger_sql.prune_slack(keep)
    assert slack == 3
    toks = []
    for i in range(keep + slack + 1):
        tok = _tok()
        at = T0 + timedelta(minutes=i)
        executions.record_claim(tok, "a", scheduled_at=at, source="tick", now=at, keep_per_job=keep)
        executions.finish(tok, status="ok", now=at, keep_per_job=keep)
        toks.append(tok)
        kept = [r["id"] for r in executions.list_executions("a", limit=None)]
        if i < keep + slack:
            assert len(kept) == i + 1, (i, len(kept))
    assert kept == list(reversed(toks[-keep:]))


@pytest.mark.usefixtures("file_store")
def test_db_file_private_and_wal(home: Path) -> None:
    """About the ledger's SQLite file (mode, WAL): a file store's."""
    executions.record_claim(_tok(), "j", scheduled_at=T0, source="tick", now=T0)
    db = ledger_file()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_recover_marks_only_provably_dead_owners(home: Path) -> None:
    me = procinfo.owner_id()
    host, pid, start = procinfo.split_owner(me) or ("", 0, "")
    dead = _dead_owner()
    reused = f"{host}:{pid}:{int(start) + 1 if start.isdigit() else 1}"
    elsewhere = "some-other-host.example:1:1"
    rows = {
        "dead_claimed": (dead, "claimed"),
        "dead_running": (dead, "running"),
        "reused": (reused, "running"),
        "alive": (me, "running"),
        "remote": (elsewhere, "claimed"),
        "dead_but_ok": (dead, "ok"),
    }
    for tok, (owner, status) in rows.items():
        executions.record_claim(tok, "j", scheduled_at=T0, source="tick", owner=owner, now=T0)
        if status == "running":
            executions.mark_running(tok, job_id="j", owner=owner, now=T0)
        elif status == "ok":
            executions.finish(tok, status="ok", now=T0)
    later = T0 + timedelta(hours=1)
    assert executions.recover_interrupted_executions(now=later) == 3
    got = {tok: executions.get_execution(tok) for tok in rows}
    for tok in ("dead_claimed", "dead_running", "reused"):
        row = got[tok]
        assert row is not None
        assert row["status"] == "unknown"
        assert row["finished_at"] == later.isoformat()
        assert "gone" in row["error"]
    assert got["alive"] is not None and got["alive"]["status"] == "running"
    assert got["remote"] is not None and got["remote"]["status"] == "claimed"
    ok_row = got["dead_but_ok"]
    assert ok_row is not None
    assert (ok_row["status"], ok_row["finished_at"], ok_row["error"]) == (
        "ok",
        T0.isoformat(),
        None,
    )
    # Idempotent: nothing left to recover, nothing rerun or re-marked.
    assert executions.recover_interrupted_executions(now=later) == 0


_WORKER = """
import sys, uuid
from datetime import UTC, datetime
from cron import executions
name = sys.argv[1]
for i in range(200):
    tok = uuid.uuid4().hex
    executions.record_claim(tok, "job-" + name, scheduled_at=None, source="tick")
    executions.finish(tok, status="ok")
"""


def test_two_processes_insert_concurrently(home: Path) -> None:
    env = {**os.environ, "CRONKIT_HOME": str(home), "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, name], env=env, stderr=subprocess.PIPE)
        for name in ("a", "b")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    rows = executions.list_executions(limit=None)
    assert len(rows) == 400
    assert {r["status"] for r in rows} == {"ok"}
    assert len(executions.list_executions("job-a", limit=None)) == 200
    if isinstance(get_store().ledger(), SqliteLedger):  # a file ledger: check the file too
        with sqlite3.connect(ledger_file()) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()


@pytest.mark.usefixtures("file_store")
def test_corrupt_ledger_raises_database_error(home: Path) -> None:
    """About a corrupt SQLite ledger file: a file store's."""
    paths.cron_dir(create=True)
    ledger_file().write_bytes(b"this is not a sqlite database" * 200)
    with pytest.raises(sqlite3.DatabaseError):
        executions.list_executions()
    with pytest.raises(sqlite3.DatabaseError):
        executions.record_claim(_tok(), "j", scheduled_at=None, source="tick")
