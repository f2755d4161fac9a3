"""SPEC §12/§13: one live run per job, across gateway stops, ``kill -9`` and runaway timeouts.

Real gateway processes, real ``sleep`` jobs. Overlap is observed from ``/proc``
(processes carrying the job's ``CRONKIT_JOB_ID``), not from cronkit's own
ledger, every 100 ms across the whole test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cron import executions, jobs
from cron.procgroup import ProcessGroup
from cron.procinfo import process_start_time
from tests.phase4._groups import GroupSampler, job_groups, kill_groups
from tests.phase4._support import (
    REPO,
    gateway_env,
    start_gateway,
    wait_for,
)

pytestmark = pytest.mark.slow


def _one_group(job_id: str, *, not_in: frozenset[int] = frozenset(), timeout: float = 10.0) -> int:
    def fresh() -> int | None:
        groups = job_groups([job_id])[job_id] - not_in
        return next(iter(groups)) if groups else None

    return int(wait_for(fresh, timeout=timeout, step=0.05))


def test_ctrl_c_after_the_grace_ends_the_job_and_a_restart_runs_one_copy(home: Path) -> None:
    """Issue 12, case 1 as written: ``every 2s`` ``sleep 100000``, ``--grace 2``, Ctrl-C,
    restart."""
    job = jobs.create_job("every 2s", "sleep 100000", name="sleeper")
    seen: set[int] = set()
    try:
        with GroupSampler([job["id"]]) as sampler:
            gw = start_gateway(home, "--no-webhook", "--grace", "2", "--interval", "0.5")
            first = _one_group(job["id"])
            # The ledger row names that group, with its leader's start time.
            row = wait_for(
                lambda: next((r for r in executions.list_live_executions() if r["pgid"]), None)
            )
            assert (row["pgid"], row["pgid_start"]) == (first, process_start_time(first))
            assert gw.stop(signal.SIGINT, timeout=20) == 0
            # Nothing the gateway started outlives it.
            assert job_groups([job["id"]])[job["id"]] == set()
            err = gw.stderr()
            assert "1 job(s) still running after the 2s grace; ending their process groups" in err
            assert f"run start: job {job['id']} (sleeper) slot " in err and "source tick" in err
            assert f"run end: job {job['id']} (sleeper) interrupted in " in err
            rows = executions.list_executions(job["id"], limit=None)
            assert [r["status"] for r in rows] == ["interrupted"]
            assert jobs.get_job(job["id"])["fire_claim"] is None

            gw2 = start_gateway(home, "--no-webhook", "--grace", "0.5", "--interval", "0.5")
            second = _one_group(job["id"], not_in=frozenset({first}))
            assert gw2.stop(signal.SIGTERM, timeout=20) == 0
            assert job_groups([job["id"]])[job["id"]] == set()
        seen = sampler.seen[job["id"]]
        assert {first, second} <= seen
        assert sampler.samples > 20
        assert sampler.overlaps == [] and sampler.max_groups[job["id"]] == 1
    finally:
        kill_groups(seen)


def test_kill_9_then_restart_ends_the_orphaned_group_before_a_new_run(home: Path) -> None:
    """Issue 12, case 1 with ``kill -9``: the job's group outlives the gateway until
    the next gateway's recovery ends it — at most one group alive, sampled every 100 ms."""
    job = jobs.create_job("every 2s", "sleep 100000", name="sleeper")
    seen: set[int] = set()
    try:
        with GroupSampler([job["id"]], every=0.1) as sampler:
            gw = start_gateway(home, "--no-webhook", "--interval", "0.2")
            first = _one_group(job["id"])
            wait_for(lambda: any(r["pgid"] == first for r in executions.list_live_executions()))
            gw.proc.send_signal(signal.SIGKILL)
            gw.proc.wait(10)
            time.sleep(0.3)
            orphan = ProcessGroup(first, process_start_time(first))
            assert orphan.alive()  # the scenario: the job outlived its gateway

            gw2 = start_gateway(home, "--no-webhook", "--grace", "0.5", "--interval", "0.2")
            second = _one_group(job["id"], not_in=frozenset({first}))
            assert not orphan.alive()
            rows = {r["id"]: r for r in executions.list_executions(job["id"], limit=None)}
            old = next(r for r in rows.values() if r["status"] == "unknown")
            assert f"process group {first} was still running and was ended" in old["error"]
            assert "ending it" in gw2.stderr()
            assert gw2.stop(signal.SIGTERM, timeout=20) == 0
            assert job_groups([job["id"]])[job["id"]] == set()
        seen = sampler.seen[job["id"]]
        assert {first, second} <= seen
        assert sampler.samples > 20
        assert sampler.overlaps == [] and sampler.max_groups[job["id"]] == 1
    finally:
        kill_groups(seen)


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    """A group recorded with another leader start time is not ours: not alive, not signalled."""
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        real = ProcessGroup.of_leader(proc.pid)
        assert real.alive() and real.members() == [proc.pid]
        reused = ProcessGroup(proc.pid, str(int(real.leader_start or "0") + 1))
        assert not reused.alive()
        assert reused.signal(signal.SIGKILL) is False
        time.sleep(0.1)
        assert proc.poll() is None  # untouched
        assert real.terminate(grace=2.0)
        assert proc.wait(5) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_parent_killed_before_recording_the_group_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    """The gate: the command starts only after ``on_spawn`` returned; a parent that dies
    inside it (``kill -9`` between spawn and ledger write) leaves no command behind."""
    marker = tmp_path / "ran"
    pgid_file = tmp_path / "pgid"
    script = f"""
import os, signal
from cron.runners import RunContext, run_command

def die(group):
    open({str(pgid_file)!r}, "w").write(str(group.pgid))
    os.kill(os.getpid(), signal.SIGKILL)

run_command({{"id": "abcabcabcabc", "action": {{"command": "touch {marker}; sleep 30"}}}},
            RunContext(timeout=None, scheduled_at=None, on_spawn=die))
"""
    env = dict(os.environ, CRONKIT_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", script], env=env, timeout=30)
    assert done.returncode == -signal.SIGKILL
    group = ProcessGroup(int(pgid_file.read_text()), None)
    wait_for(lambda: not group.alive(), timeout=5)
    time.sleep(0.2)
    assert not marker.exists()


def test_python_timeout_keeps_the_claim_and_status_names_the_runaway(home: Path) -> None:
    """Issue 12, case 4: a ``--python`` job whose function ignores its timeout never gets a
    second run (or thread) beside it; ``status`` lists it; its claim goes when it really ends."""
    from tests.cli._helpers import cli

    job = jobs.create_job(
        "every 1s",
        {"kind": "python", "target": "tests.phase4._loopjob:spin"},
        name="spinner",
        timeout=0.4,
    )
    gw = start_gateway(home, "--no-webhook", "--interval", "0.2", "--grace", "0.5")
    try:
        starts = home / "starts"
        wait_for(lambda: starts.exists(), timeout=10)
        row = wait_for(
            lambda: next(
                (r for r in executions.list_live_executions() if r["job_id"] == job["id"]), None
            )
        )
        time.sleep(1.0)  # well past the timeout: the run is a straggler by now

        def threads() -> int:
            text = Path(f"/proc/{gw.proc.pid}/status").read_text()
            return int(
                next(line.split()[1] for line in text.splitlines() if line.startswith("Threads:"))
            )

        base = threads()
        counts = []
        for _ in range(12):  # three more slots come due meanwhile
            time.sleep(0.25)
            counts.append(threads())
        assert max(counts) <= base, (base, counts)
        assert starts.read_text().count("start") == 1
        live = executions.list_live_executions()
        assert [(r["id"], r["status"]) for r in live] == [(row["id"], "running")]
        assert jobs.get_job(job["id"])["fire_claim"]["token"] == row["id"]
        skipped = [
            r for r in executions.list_executions(job["id"], limit=None) if r["status"] == "skipped"
        ]
        assert len(skipped) >= 2  # the slots that came due were recorded, not run

        r = cli("status")
        assert r.exit_code == 0, r.stdout
        assert "runaway runs:" in r.stdout
        assert f"✗ {job['id']} (spinner): running " in r.stdout
        assert "past its 0.4s timeout, in a thread of pid " in r.stdout
        data = json.loads(cli("status", "--json").stdout)
        assert [x["id"] for x in data["runaway_runs"]] == [row["id"]]
        assert data["runaway_runs"][0]["timeout"] == 0.4

        (home / "release").write_text("")
        done = wait_for(
            lambda: next(
                (
                    x
                    for x in executions.list_executions(job["id"], limit=None)
                    if x["id"] == row["id"] and x["status"] == "timeout"
                ),
                None,
            )
        )
        assert "could not be killed and returned after" in done["error"]
        # Released: the next slot runs normally.
        wait_for(lambda: starts.read_text().count("start") >= 2, timeout=10)
    finally:
        (home / "release").write_text("")
        gw.stop(signal.SIGTERM, timeout=20)


def test_gateway_stop_closes_a_runaway_python_run_and_exits(home: Path) -> None:
    job = jobs.create_job(
        "every 1s",
        {"kind": "python", "target": "tests.phase4._loopjob:spin"},
        name="spinner",
        timeout=0.3,
    )
    gw = start_gateway(home, "--no-webhook", "--interval", "0.2", "--grace", "0.5")
    wait_for(lambda: (home / "starts").exists(), timeout=10)
    time.sleep(0.8)
    started = time.monotonic()
    assert gw.stop(signal.SIGTERM, timeout=20) == 0
    # The grace, then no wait for a callable that cannot be stopped.
    assert time.monotonic() - started < 3.5
    rows = executions.list_executions(job["id"], limit=None)
    ran = [r for r in rows if r["status"] not in ("skipped", "missed")]
    assert [r["status"] for r in ran] == ["timeout"]
    assert "the gateway exited after its grace" in ran[0]["error"]
    assert jobs.get_job(job["id"])["fire_claim"] is None
    assert executions.list_live_executions() == []


def test_port_in_use_names_the_port_and_the_way_out(home: Path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        r = subprocess.run(
            [sys.executable, "-m", "cron", "gateway", "--port", str(port)],
            env=gateway_env(home),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        busy.close()
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if "ERROR" in line]
    assert len(lines) == 1, r.stderr
    assert f"port {port} is already in use" in lines[0]
    assert "--port" in lines[0] and "--no-webhook" in lines[0]
    assert "Traceback" not in r.stderr
