"""Helpers shared by the phase-4 tests: signing by hand, due jobs, a real gateway process."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cron import executions, jobs
from tests.conftest import install_plugin

REPO = Path(__file__).resolve().parents[2]

# A provider that never ticks: fires come only from the webhook, so a test
# that counts runs is not racing the built-in ticker for the same due slot.
WEBHOOK_ONLY_PLUGIN = """
import threading

from cron.scheduler_provider import CronScheduler


class WebhookOnly(CronScheduler):
    @property
    def name(self):
        return "webhookonly"

    def start(self, stop_event, *, adapters=None, loop=None, interval=60):
        stop_event.wait()
"""


def use_webhook_only_provider(home: Path) -> None:
    install_plugin(home, "webhookonly", WEBHOOK_ONLY_PLUGIN)
    (home / "config.yaml").write_text("cron:\n  provider: webhookonly\n", encoding="utf-8")


def hand_sign(secret: str, timestamp: str, body: bytes) -> str:
    """The SPEC §7 scheme written out with ``hmac``, independently of cron.webhook.sign."""
    key = secret.strip().encode("utf-8")
    return "sha256=" + hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str, body: bytes, *, timestamp: float | str | None = None
) -> dict[str, str]:
    if timestamp is None:
        timestamp = time.time()
    ts = timestamp if isinstance(timestamp, str) else str(int(timestamp))
    return {
        "Content-Type": "application/json",
        "X-Cronkit-Timestamp": ts,
        "X-Cronkit-Signature": hand_sign(secret, ts, body),
    }


def fire_body(job_id: Any, **extra: Any) -> bytes:
    return json.dumps({"job_id": job_id, **extra}).encode("utf-8")


def due_job(count_file: Path, *, every: int = 60) -> dict[str, Any]:
    """A recurring job whose first slot passed a second ago; each run appends one line."""
    created = datetime.now(UTC) - timedelta(seconds=every + 1)
    return jobs.create_job(
        f"every {every}s", f"echo fired >> '{count_file}'", name="counted", now=created
    )


def count_lines(path: Path) -> int:
    try:
        return len(path.read_text(encoding="utf-8").splitlines())
    except FileNotFoundError:
        return 0


def wait_for(predicate: Any, timeout: float = 10.0, step: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(step)


def finished_rows(job_id: str) -> list[dict[str, Any]]:
    rows = executions.list_executions(job_id, limit=None)
    if any(r["status"] in ("claimed", "running") for r in rows):
        return []
    return rows


def gateway_command(*args: str) -> list[str]:
    """``python -m cron gateway ...`` once the CLI has it; ``python -m cron.gateway`` until then."""
    if importlib.util.find_spec("cron.cli") is not None:
        return [sys.executable, "-m", "cron", "gateway", *args]
    return [sys.executable, "-m", "cron.gateway", *args]


def gateway_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["CRONKIT_HOME"] = str(home)
    env["TZ"] = "UTC"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.pop("HYPOTHESIS_PROFILE", None)
    return env


@dataclass
class Gateway:
    proc: subprocess.Popen[bytes]
    home: Path
    stderr_path: Path
    info: dict[str, Any]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.info['port']}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(
                f"gateway did not stop within {timeout}s:\n{self.stderr()}"
            ) from None


def read_pid_file(home: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((home / "cron" / "gateway.pid").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def start_gateway(home: Path, *args: str, timeout: float = 10.0) -> Gateway:
    """Start ``cronkit gateway --port 0`` on ``home``; return once its pid file names its port."""
    stderr_path = home.parent / f"gateway-{time.monotonic_ns()}.stderr"
    home.mkdir(parents=True, exist_ok=True)
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            gateway_command("--port", "0", *args),
            env=gateway_env(home),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + timeout
    while True:
        info = read_pid_file(home)
        if info is not None and info.get("pid") == proc.pid:
            return Gateway(proc, home, stderr_path, info)
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            raise AssertionError(
                f"gateway not ready (exit {proc.returncode}):\n"
                + stderr_path.read_text(encoding="utf-8", errors="replace")
            )
        time.sleep(0.02)


@contextmanager
def running_gateway(home: Path, *args: str) -> Iterator[Gateway]:
    gw = start_gateway(home, *args)
    try:
        yield gw
    finally:
        if gw.proc.poll() is None:
            gw.stop()
