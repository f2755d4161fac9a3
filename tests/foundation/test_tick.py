"""``tick`` and ``run_one_job`` (SPEC §4), with real locks, files and processes."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cron import completer, executions, jobs, paths, runners, scheduler
from cron.claim import parse_ts
from cron.output import list_outputs, read_output
from cron.runners import RunContext, RunResult
from cron.schedule import to_iso
from cron.store import set_store
from tests.characterization.actions import BLOCK, INTERRUPT, OK, RELEASE_ENV
from tests.conftest import write_config
from tests.support.stores import snapshot

T0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
DUE = T0 + timedelta(minutes=1)
PY_OK = {"kind": "python", "target": OK}
PY_BLOCK = {"kind": "python", "target": BLOCK}


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    set_store(None)
    yield
    # A failing test must not leave blocked jobs running into the next one.
    scheduler.wait_for_running(25)
    set_store(None)


@pytest.fixture
def release_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    d = tmp_path / "release"
    d.mkdir()
    monkeypatch.setenv(RELEASE_ENV, str(d))
    yield d
    (d / "release").touch()  # never leave a job blocked


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def _started(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("started-"))


def _tick_lock_is_free() -> bool:
    """Try the tick lock through a fresh open file description (flock is per description)."""
    fd = os.open(paths.tick_lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def _ledger(job_id: str) -> list[dict[str, Any]]:
    return executions.list_executions(job_id, limit=None)


# -- 1. the tick lock -------------------------------------------------------------------

_HOLD_TICK_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def test_contention_returns_zero_and_leaves_the_job_due(home: Path) -> None:
    job = jobs.create_job("every 1m", PY_OK, now=T0)
    paths.cron_dir(create=True)
    before = snapshot()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_TICK_LOCK, str(paths.tick_lock_path())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        assert scheduler.tick(now=DUE, sync=True) == 0
        assert time.monotonic() - started < 2, "the tick lock is taken without blocking"
        assert snapshot() == before
        assert [j["id"] for j in jobs.get_due_jobs(DUE)] == [job["id"]]
        assert _ledger(job["id"]) == []
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    assert scheduler.tick(now=DUE, sync=True) == 1


def test_other_oserror_on_the_tick_lock_raises(home: Path) -> None:
    job = jobs.create_job("every 1m", PY_OK, now=T0)
    paths.cron_dir(create=True)  # a database store writes nothing in the home until a tick
    paths.tick_lock_path().mkdir(mode=0o700)
    before = snapshot()
    with pytest.raises(OSError):
        scheduler.tick(now=DUE, sync=True)
    assert snapshot() == before
    assert [j["id"] for j in jobs.get_due_jobs(DUE)] == [job["id"]]


def test_can_dispatch_false_returns_zero_and_leaves_jobs_intact(home: Path) -> None:
    job = jobs.create_job("every 1m", PY_OK, now=T0)
    before = snapshot()
    asked: list[int] = []

    def no() -> bool:
        asked.append(1)
        return False

    assert scheduler.tick(now=DUE, sync=True, can_dispatch=no) == 0
    assert asked == [1]
    assert snapshot() == before
    assert _ledger(job["id"]) == []
    assert scheduler.tick(now=DUE, sync=True, can_dispatch=lambda: True) == 1
    assert jobs.get_job(job["id"])["last_status"] == "ok"  # type: ignore[index]


def test_tick_returns_number_dispatched(home: Path) -> None:
    a = jobs.create_job("every 1m", PY_OK, now=T0)
    b = jobs.create_job("every 1m", "true", now=T0)
    jobs.create_job("every 1h", PY_OK, now=T0)
    assert scheduler.tick(now=DUE - timedelta(seconds=1), sync=True) == 0
    assert scheduler.tick(now=DUE, sync=True) == 2
    for job in (a, b):
        stored = jobs.get_job(job["id"])
        assert stored is not None
        assert (stored["last_status"], stored["fire_claim"]) == ("ok", None)
        assert [r["status"] for r in _ledger(job["id"])] == ["ok"]
    assert scheduler.tick(now=DUE, sync=True) == 0


# -- 2. sync / async, and the lock is not held while jobs run -------------------------------


def test_sync_true_waits_for_the_jobs(home: Path) -> None:
    job = jobs.create_job("every 1m", "sleep 0.3; echo done", now=T0)
    assert scheduler.tick(now=DUE, sync=True) == 1
    assert scheduler.running_jobs() == 0
    (row,) = _ledger(job["id"])
    assert row["status"] == "ok"
    assert read_output(row["output_path"]) == "done\n"


def test_sync_false_returns_at_once_and_the_job_finishes_later(
    home: Path, release_dir: Path
) -> None:
    job = jobs.create_job("every 1m", PY_BLOCK, now=T0)
    assert scheduler.tick(now=DUE, sync=False) == 1
    _wait_for(lambda: _started(release_dir) == [f"started-{job['id']}"])
    assert scheduler.running_jobs() == 1
    (row,) = _ledger(job["id"])
    assert row["status"] == "running"
    assert jobs.get_job(job["id"])["fire_claim"] is not None  # type: ignore[index]
    assert _tick_lock_is_free(), "the tick lock must not be held while jobs run"
    (release_dir / "release").touch()
    assert scheduler.wait_for_running(10)
    assert [r["status"] for r in _ledger(job["id"])] == ["ok"]
    assert jobs.get_job(job["id"])["fire_claim"] is None  # type: ignore[index]


def test_tick_lock_is_free_while_a_sync_tick_runs_its_jobs(home: Path, release_dir: Path) -> None:
    job = jobs.create_job("every 1m", PY_BLOCK, now=T0)
    other = jobs.create_job("every 1m", PY_OK, now=T0 + timedelta(seconds=30))
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(scheduler.tick(now=DUE, sync=True)))
    runner.start()
    try:
        _wait_for(lambda: _started(release_dir) == [f"started-{job['id']}"])
        assert result == [], "sync=True has not returned while its job runs"
        assert _tick_lock_is_free()
        # Another tick can take the lock and fire what is due meanwhile.
        assert scheduler.tick(now=DUE + timedelta(seconds=30), sync=True) == 1
        assert jobs.get_job(other["id"])["last_status"] == "ok"  # type: ignore[index]
    finally:
        (release_dir / "release").touch()
        runner.join(15)
    assert result == [1]


def test_max_parallel_jobs_is_honoured(home: Path, release_dir: Path) -> None:
    write_config(home, "cron:\n  max_parallel_jobs: 2\n")
    created = [jobs.create_job("every 1m", PY_BLOCK, now=T0) for _ in range(4)]
    assert scheduler.tick(now=DUE, sync=False) == 4
    _wait_for(lambda: len(_started(release_dir)) == 2)
    time.sleep(0.3)
    assert len(_started(release_dir)) == 2, "only max_parallel_jobs run at once"
    assert scheduler.running_jobs() == 4
    (release_dir / "release").touch()
    assert scheduler.wait_for_running(15)
    assert len(_started(release_dir)) == 4
    for job in created:
        assert [r["status"] for r in _ledger(job["id"])] == ["ok"]


# -- 3. run_one_job -----------------------------------------------------------------------


def _claimed(job_id: str, now: datetime = DUE) -> dict[str, Any]:
    token = jobs.claim_job_for_fire(job_id, now=now)
    assert token
    job = jobs.get_job(job_id)
    assert job is not None and job["fire_claim"]["token"] == token
    return job


def test_run_one_job_writes_output_and_ledger(home: Path) -> None:
    job = jobs.create_job("every 1m", PY_OK, now=T0)
    claimed = _claimed(job["id"])
    token = claimed["fire_claim"]["token"]
    assert scheduler.run_one_job(claimed) is True
    row = executions.get_execution(token)
    assert row is not None
    assert (row["status"], row["scheduled_at"], row["error"]) == ("ok", to_iso(DUE), None)
    assert row["started_at"] and row["finished_at"]
    (out,) = list_outputs(job["id"])
    assert row["output_path"] == str(out)
    assert read_output(out) == "ok"
    stored = jobs.get_job(job["id"])
    assert stored is not None
    assert (stored["last_status"], stored["fire_claim"], stored["failure_streak"]) == (
        "ok",
        None,
        0,
    )


def test_run_one_job_failure_is_recorded(home: Path) -> None:
    job = jobs.create_job("every 1m", "echo oops; exit 3", now=T0)
    claimed = _claimed(job["id"])
    assert scheduler.run_one_job(claimed) is False
    row = executions.get_execution(claimed["fire_claim"]["token"])
    assert row is not None and (row["status"], row["error"]) == ("error", "exit status 3")
    assert "oops" in read_output(row["output_path"])
    stored = jobs.get_job(job["id"])
    assert stored is not None
    assert (stored["last_status"], stored["last_error"], stored["failure_streak"]) == (
        "error",
        "exit status 3",
        1,
    )


def test_run_one_job_without_a_claim_is_refused(home: Path) -> None:
    job = jobs.create_job("every 1m", PY_OK, now=T0)
    with pytest.raises(ValueError, match="claim"):
        scheduler.run_one_job(job)
    assert executions.list_executions(limit=None) == []


def test_keyboard_interrupt_is_recorded_then_propagates(home: Path) -> None:
    job = jobs.create_job("every 1m", {"kind": "python", "target": INTERRUPT}, now=T0)
    claimed = _claimed(job["id"])
    with pytest.raises(KeyboardInterrupt):
        scheduler.run_one_job(claimed)
    row = executions.get_execution(claimed["fire_claim"]["token"])
    assert row is not None
    assert row["status"] == "interrupted" and "KeyboardInterrupt" in row["error"]
    stored = jobs.get_job(job["id"])
    assert stored is not None
    assert stored["fire_claim"] is None, "the claim is released"
    assert stored["last_status"] == "interrupted"


def test_system_exit_from_a_registered_runner_is_interrupted(home: Path) -> None:
    def exiting(job: dict[str, Any], ctx: RunContext) -> RunResult:
        raise SystemExit(3)

    runners.register_runner("exit-test", exiting)
    try:
        job = jobs.create_job("every 1m", {"kind": "exit-test"}, now=T0)
        claimed = _claimed(job["id"])
        with pytest.raises(SystemExit):
            scheduler.run_one_job(claimed)
    finally:
        runners.unregister_runner("exit-test")
    row = executions.get_execution(claimed["fire_claim"]["token"])
    assert row is not None and row["status"] == "interrupted"
    assert jobs.get_job(job["id"])["fire_claim"] is None  # type: ignore[index]


def test_command_sees_job_id_and_scheduled_at(home: Path) -> None:
    job = jobs.create_job(
        "every 1m", 'printf "%s|%s" "$CRONKIT_JOB_ID" "$CRONKIT_SCHEDULED_AT"', now=T0
    )
    assert scheduler.tick(now=DUE + timedelta(seconds=7), sync=True) == 1
    (row,) = _ledger(job["id"])
    assert row["status"] == "ok"
    assert read_output(row["output_path"]) == f"{job['id']}|{to_iso(DUE)}"


def test_output_retention_keeps_the_newest(home: Path) -> None:
    write_config(home, "cron:\n  output_retention: 3\n")
    job = jobs.create_job("every 1m", 'printf "%s" "$CRONKIT_SCHEDULED_AT"', now=T0)
    slots = [T0 + timedelta(minutes=i) for i in range(1, 6)]
    for slot in slots:
        assert scheduler.tick(now=slot, sync=True) == 1
    kept = list_outputs(job["id"])
    assert [read_output(p) for p in kept] == [to_iso(s) for s in slots[-3:]]
    rows = _ledger(job["id"])
    assert len(rows) == 5 and {r["status"] for r in rows} == {"ok"}


def test_a_long_run_keeps_its_claim_alive(home: Path) -> None:
    """A run longer than claim_ttl refreshes its claim (every ttl/3), so it is never
    mistaken for a crashed run: no second copy can claim it meanwhile."""
    write_config(home, "cron:\n  claim_ttl: 1\n")
    start = datetime.now(UTC)
    job = jobs.create_job("every 1h", "sleep 2", now=start - timedelta(hours=1))
    assert scheduler.tick(sync=False) == 1
    stamps = set()
    deadline = time.monotonic() + 1.8
    while time.monotonic() < deadline:
        claim = jobs.get_job(job["id"])["fire_claim"]
        assert claim is not None, "the claim vanished while the job was still running"
        stamps.add(claim["at"])
        age = (datetime.now(UTC) - parse_ts(claim["at"])).total_seconds()
        assert age < 1.0, f"claim {age:.2f}s old: not refreshed within claim_ttl"
        assert jobs.claim_job_for_fire(job["id"], force=True) is None
        time.sleep(0.05)
    assert len(stamps) >= 3  # refreshed several times during the run
    assert scheduler.wait_for_running(10)
    done = jobs.get_job(job["id"])
    assert done["fire_claim"] is None and done["last_status"] == "ok"


def test_a_job_queued_for_a_worker_keeps_its_claim_alive(home: Path, release_dir: Path) -> None:
    """With every worker busy, a claimed job waits in the queue longer than claim_ttl;
    its claim is refreshed from dispatch on, so it never looks like a crashed run."""
    write_config(home, "cron:\n  claim_ttl: 1\n  max_parallel_jobs: 1\n")
    start = datetime.now(UTC)
    # The blocker is due first, so it takes the one worker and `queued` waits.
    blocker = jobs.create_job("every 1h", PY_BLOCK, now=start - timedelta(hours=1, seconds=2))
    queued = jobs.create_job("every 1h", PY_OK, now=start - timedelta(hours=1, seconds=1))
    assert scheduler.tick(sync=False) == 2
    _wait_for(lambda: _started(release_dir) == [f"started-{blocker['id']}"])
    stamps = set()
    deadline = time.monotonic() + 1.8
    while time.monotonic() < deadline:
        claim = jobs.get_job(queued["id"])["fire_claim"]  # type: ignore[index]
        assert claim is not None
        stamps.add(claim["at"])
        age = (datetime.now(UTC) - parse_ts(claim["at"])).total_seconds()
        assert age < 1.0, f"queued job's claim {age:.2f}s old: not kept alive while queued"
        time.sleep(0.05)
    assert len(stamps) >= 3
    assert _started(release_dir) == [f"started-{blocker['id']}"]  # still queued meanwhile
    (release_dir / "release").touch()
    assert scheduler.wait_for_running(10)
    done = jobs.get_job(queued["id"])
    assert done is not None and done["fire_claim"] is None and done["last_status"] == "ok"


def test_bookkeeping_waits_for_queued_starts_but_only_so_long(
    home: Path, release_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Results are written after a burst's queued starts (they would compete for the
    GIL), and never later than BOOKKEEPING_MAX_DELAY behind them."""
    write_config(home, "cron:\n  max_parallel_jobs: 1\n")
    quick = jobs.create_job("every 1m", PY_OK, now=T0)
    blocker = jobs.create_job("every 1m", PY_BLOCK, now=T0 + timedelta(seconds=1))
    queued = jobs.create_job("every 1m", PY_OK, now=T0 + timedelta(seconds=2))
    monkeypatch.setattr(completer, "BOOKKEEPING_MAX_DELAY", 60.0)
    assert scheduler.tick(now=DUE + timedelta(seconds=2), sync=False) == 3
    _wait_for(lambda: f"started-{blocker['id']}" in _started(release_dir))
    # quick has finished, but `queued` still waits for the one worker: quick's
    # result is held back (checked for a while; it would land within ms if not).
    time.sleep(0.3)
    assert jobs.get_job(quick["id"])["fire_claim"] is not None  # type: ignore[index]
    (release_dir / "release").touch()
    assert scheduler.wait_for_running(10)
    for job in (quick, blocker, queued):
        assert jobs.get_job(job["id"])["last_status"] == "ok"  # type: ignore[index]

    # With the default bound, a long-running job ahead of the queue does not hold
    # finished results back for longer than the bound.
    monkeypatch.setattr(completer, "BOOKKEEPING_MAX_DELAY", 0.2)
    (release_dir / "release").unlink()
    later = DUE + timedelta(minutes=1, seconds=2)
    assert scheduler.tick(now=later, sync=False) == 3
    _wait_for(lambda: jobs.get_job(quick["id"])["fire_claim"] is None)  # type: ignore[index]
    # Written while `queued` still waits behind the blocked worker: the bound held.
    assert jobs.get_job(queued["id"])["fire_claim"] is not None  # type: ignore[index]
    assert jobs.get_job(blocker["id"])["fire_claim"] is not None  # type: ignore[index]
    (release_dir / "release").touch()
    assert scheduler.wait_for_running(10)


def test_a_python_run_past_its_timeout_frees_its_worker(home: Path, release_dir: Path) -> None:
    """Once a python callable outlives its timeout its worker is free again, so with
    ``max_parallel_jobs: 1`` the next job still runs while the runaway goes on holding its
    claim; when it ends, its run is a ``timeout`` that says how it ended. (Pinned from the
    start-path rework on the ``perf`` branch: whatever runs the callable must keep this.)"""
    write_config(home, "cron:\n  max_parallel_jobs: 1\n")
    start = datetime.now(UTC)
    runaway = jobs.create_job(
        "every 1h", PY_BLOCK, timeout=0.3, now=start - timedelta(hours=1, seconds=2)
    )
    after = jobs.create_job("every 1h", PY_OK, now=start - timedelta(hours=1, seconds=1))
    assert scheduler.tick(sync=False) == 2
    _wait_for(lambda: _started(release_dir) == [f"started-{runaway['id']}"])
    # The runaway holds the one worker until its timeout; then the queued job runs.
    _wait_for(lambda: [r["status"] for r in _ledger(after["id"])] == ["ok"])
    assert [r["status"] for r in _ledger(runaway["id"])] == ["running"]
    held = jobs.get_job(runaway["id"])["fire_claim"]  # type: ignore[index]
    assert held is not None and held["token"] == _ledger(runaway["id"])[0]["id"]
    (release_dir / "release").touch()
    assert scheduler.wait_for_running(10)
    (row,) = _ledger(runaway["id"])
    assert row["status"] == "timeout"
    assert "could not be killed and returned after" in row["error"]
    assert jobs.get_job(runaway["id"])["fire_claim"] is None  # type: ignore[index]


def test_a_silent_run_has_its_output_file_while_it_runs(home: Path, release_dir: Path) -> None:
    """A run that has printed nothing yet already has its (empty) output file, named on
    its ledger row (``cronkit logs -f`` can open it)."""
    job = jobs.create_job("every 1m", PY_BLOCK, now=T0)
    assert scheduler.tick(now=DUE, sync=False) == 1
    _wait_for(lambda: _started(release_dir) == [f"started-{job['id']}"])
    (row,) = _ledger(job["id"])
    assert row["status"] == "running" and row["output_path"]
    _wait_for(lambda: Path(row["output_path"]).exists(), timeout=5)
    assert read_output(row["output_path"]) == ""
    (release_dir / "release").touch()
    assert scheduler.wait_for_running(10)
    assert read_output(row["output_path"]) == "released"


def test_output_retention_is_applied_by_the_run_s_end(home: Path) -> None:
    write_config(home, "cron:\n  output_retention: 2\n")
    job = jobs.create_job("every 1m", "echo run", now=T0)
    for i in range(4):
        assert scheduler.tick(now=DUE + timedelta(minutes=i), sync=True) == 1
    files = list_outputs(job["id"])
    assert len(files) == 2
    assert files[-1] == Path(_ledger(job["id"])[0]["output_path"])
