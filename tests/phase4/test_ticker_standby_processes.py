"""SPEC §12 with real processes: the gunicorn trap and an embedded ticker beside a gateway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

import cron
from cron import executions, jobs, paths
from cron.procinfo import split_owner
from cron.status import ticker_status
from tests.phase4._support import REPO, gateway_env, start_gateway, wait_for

pytestmark = pytest.mark.slow

WORKER = textwrap.dedent("""
    import sys
    import cron

    handle = cron.start_in_background(interval=0.2)
    print("up", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    handle.stop()
""")


def _ticker_pid() -> int | None:
    try:
        return int(json.loads(paths.ticker_pid_path().read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def _run_owners(job_id: str) -> list[int]:
    rows = executions.list_executions(job_id, limit=None)
    return [
        split_owner(r["owner"])[1]
        for r in rows  # type: ignore[index]
        if r["status"] in ("running", "ok") and r["owner"]
    ]


def test_four_workers_calling_start_in_background_tick_exactly_once(home: Path) -> None:
    """The gunicorn trap: four worker processes each embed the ticker; one ticks, and
    another takes over within 2 s of its ``kill -9``."""
    job = jobs.create_job("every 1s", "true", name="beat")
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER],
            env=gateway_env(home),
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(4)
    ]
    try:
        for w in workers:
            assert w.stdout is not None and w.stdout.readline().strip() == b"up"
        pids = {w.pid for w in workers}
        active = wait_for(lambda: _ticker_pid() in pids and _ticker_pid(), timeout=10)
        wait_for(lambda: len(_run_owners(job["id"])) >= 3, timeout=15)
        time.sleep(0.5)
        assert set(_run_owners(job["id"])) == {active}  # nobody else ran a thing
        assert _ticker_pid() == active

        victim = next(w for w in workers if w.pid == active)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed_at = time.monotonic()
        beat_before = paths.heartbeat_path().stat().st_mtime
        successor = wait_for(
            lambda: _ticker_pid() in pids - {active} and _ticker_pid(), timeout=5, step=0.01
        )
        wait_for(lambda: paths.heartbeat_path().stat().st_mtime > beat_before, timeout=5, step=0.01)
        assert time.monotonic() - killed_at < 2.0
        assert ticker_status().state == "running"
        runs_before = len(_run_owners(job["id"]))
        wait_for(lambda: len(_run_owners(job["id"])) >= runs_before + 2, timeout=10)
        owners = _run_owners(job["id"])
        assert set(owners) == {active, successor}
        assert set(owners[: len(owners) - runs_before]) == {successor}  # newest first
    finally:
        for w in workers:
            if w.poll() is None:
                assert w.stdin is not None
                w.stdin.close()
        for w in workers:
            try:
                w.wait(10)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait(5)


def test_an_embedded_ticker_beside_a_gateway_stands_by_and_stop_leaves_it_alone(
    home: Path,
) -> None:
    """Issue 12, case 2: ``start_in_background()`` then ``handle.stop()`` on a home whose
    gateway runs no longer deletes the gateway's ``ticker.pid``; status and /healthz
    stay truthful; when the gateway dies the embedded ticker takes over."""
    gw = start_gateway(home, "--interval", "0.2")
    try:
        wait_for(lambda: _ticker_pid() == gw.proc.pid)
        handle = cron.start_in_background(interval=0.2)
        wait_for(lambda: handle.standing_by, timeout=5)
        time.sleep(0.5)
        assert _ticker_pid() == gw.proc.pid
        assert handle.stop(timeout=5)
        assert _ticker_pid() == gw.proc.pid
        st = ticker_status()
        assert (st.state, st.gateway_pid) == ("running", gw.proc.pid)
        with urllib.request.urlopen(gw.url + "/healthz", timeout=10) as resp:
            assert resp.status == 200

        # A standby that outlives the gateway becomes the active ticker.
        handle = cron.start_in_background(interval=0.2)
        wait_for(lambda: handle.standing_by, timeout=5)
        gw.proc.send_signal(signal.SIGKILL)
        gw.proc.wait(10)
        wait_for(lambda: handle.active and _ticker_pid() == os.getpid(), timeout=2.0, step=0.01)
        assert ticker_status().state == "running"
        assert handle.stop(timeout=5)
        assert _ticker_pid() is None
    finally:
        if gw.proc.poll() is None:
            gw.stop()
