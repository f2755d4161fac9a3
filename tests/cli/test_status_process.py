"""``cronkit status`` against real ticker processes: a gateway and an embedding host.

The gateway is frozen with SIGSTOP (alive, not ticking) until its heartbeat is
older than ``stale_after`` — floored by the SPEC at 3 x interval + 20 s, so
~20 s with interval 0.1 — then thawed, then SIGKILLed so its ``ticker.pid``
is left behind. Every verdict comes from the real ``cronkit status`` process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cron import jobs, paths
from tests.cli._helpers import (
    REPO,
    WEBHOOK_ONLY_PLUGIN,
    cronkit,
    subprocess_env,
    wait_until,
)
from tests.conftest import install_plugin, write_config

pytestmark = pytest.mark.slow

STALE_FLOOR = 3 * 0.1 + 20  # what cron.config.stale_after makes of interval 0.1, stale_after 1


@contextmanager
def _process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=subprocess_env(), cwd=REPO
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        proc.wait(timeout=30)


def _status() -> tuple[int, str]:
    r = cronkit("status")
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, r.stdout


def _wait_for_status(code: int, timeout: float, what: str) -> str:
    seen: list[str] = []

    def check() -> bool:
        rc, out = _status()
        seen[:] = [out]
        return rc == code

    try:
        wait_until(check, timeout, what, every=0.3)
    except AssertionError:
        raise AssertionError(f"{what}; last status output:\n{seen[0] if seen else ''}") from None
    return seen[0]


def test_gateway_running_stalled_recovered_killed(home: Path, tmp_path: Path) -> None:
    write_config(home, "cron:\n  interval: 0.1\n  stale_after: 1\n")
    args = [sys.executable, "-m", "cron", "gateway", "--no-webhook", "--interval", "0.1"]
    with _process(args, tmp_path / "gateway.log") as gw:
        out = _wait_for_status(0, 20, "the gateway to report running")
        assert out.splitlines()[0].startswith(f"✓ ticker running (pid {gw.pid}): last heartbeat ")

        os.kill(gw.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        out = _wait_for_status(1, STALE_FLOOR + 15, "status to say STALLED")
        waited = time.monotonic() - frozen_at
        first = out.splitlines()[0]
        assert first.startswith("✗ ticker STALLED: last heartbeat "), out
        assert f"(> {STALE_FLOOR:.0f}s) — jobs are NOT firing; restart the gateway" in first
        assert waited >= STALE_FLOOR - 1  # not stalled before the threshold
        assert gw.poll() is None  # frozen, not dead

        os.kill(gw.pid, signal.SIGCONT)
        out = _wait_for_status(0, 10, "the thawed gateway to report running again")
        assert out.splitlines()[0].startswith(f"✓ ticker running (pid {gw.pid})")

        os.kill(gw.pid, signal.SIGKILL)
        gw.wait(timeout=10)
        # The kill left its pid file behind: a stale pid file must not read as running.
        stale = json.loads(paths.ticker_pid_path().read_text())
        assert stale["pid"] == gw.pid
        rc, out = _status()
        assert rc == 2, out
        assert out.splitlines()[0].startswith("✗ ticker stopped: no gateway or embedded ticker")
        assert f"stale pid file: pid {gw.pid} is not running" in out


EMBEDDING_HOST = textwrap.dedent("""
    import threading
    import cron

    handle = cron.start_in_background(interval=0.2)
    print("started", flush=True)
    threading.Event().wait()  # an idle host: runs until the test kills it
""")


def test_embedded_ticker_is_detected(home: Path, tmp_path: Path) -> None:
    args = [sys.executable, "-c", EMBEDDING_HOST]
    with _process(args, tmp_path / "host.log") as host:
        out = _wait_for_status(0, 20, "the embedding host's ticker to report running")
        assert out.splitlines()[0].startswith(f"✓ ticker running (pid {host.pid})")
        host.kill()
        host.wait(timeout=10)
    rc, out = _status()
    assert rc == 2
    assert f"stale pid file: pid {host.pid} is not running" in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_via_webhook(home: Path, tmp_path: Path) -> None:
    # A provider that never ticks: only the webhook fires, so nothing races for the due slot.
    install_plugin(home, "webhookonly", WEBHOOK_ONLY_PLUGIN)
    write_config(home, f"cron:\n  provider: webhookonly\n  webhook: {{port: {_free_port()}}}\n")
    job = jobs.create_job(
        "every 1h",
        "echo via-webhook",
        name="hooked",
        now=datetime.now(UTC) - timedelta(seconds=3601),
    )
    args = [sys.executable, "-m", "cron", "gateway", "--interval", "0.2"]
    with _process(args, tmp_path / "gateway.log") as gw:
        wait_until(lambda: paths.gateway_pid_path().exists(), 20, "the gateway to serve")
        r = cronkit("run", "hooked", "--via-webhook")
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert r.stdout.startswith("webhook: HTTP 202 accepted; job ")

        def ran() -> bool:
            r = cronkit("history", job["id"], "--json")
            rows = json.loads(r.stdout)["executions"]
            return bool(rows) and rows[0]["status"] == "ok"

        wait_until(ran, 20, "the webhook fire to finish")
        rows = json.loads(cronkit("history", job["id"], "--json").stdout)["executions"]
        assert [(row["status"], row["source"]) for row in rows] == [("ok", "webhook")]

        # The slot is spent: the next fire through the webhook is refused, exit 1.
        r = cronkit("run", "hooked", "--via-webhook")
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert r.stdout.startswith("webhook: HTTP 409 not due until ")
        gw.send_signal(signal.SIGINT)
        assert gw.wait(timeout=30) == 0
