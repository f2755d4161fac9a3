"""Shared by the CLI tests: invoking the CLI in-process and as a real process, fake plugins."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner, Result

from cron.cli import main
from tests.support import stores

REPO = Path(__file__).resolve().parents[2]

FAKE_EXTERNAL_PLUGIN = """
from cron.scheduler_provider import CronScheduler


class FakeExt(CronScheduler):
    @property
    def name(self):
        return "fakeext"

    def start(self, stop_event, *, adapters=None, loop=None, interval=60):
        return None

    def status_detail(self):
        return "fake external trigger in place"
"""

UNAVAILABLE_PLUGIN = """
from cron.scheduler_provider import CronScheduler


class FakeOff(CronScheduler):
    @property
    def name(self):
        return "fakeoff"

    def start(self, stop_event, *, adapters=None, loop=None, interval=60):
        return None

    def is_available(self):
        return False
"""

# Never ticks: fires come only from the webhook, so nothing races it for a due slot.
WEBHOOK_ONLY_PLUGIN = """
from cron.scheduler_provider import CronScheduler


class WebhookOnly(CronScheduler):
    @property
    def name(self):
        return "webhookonly"

    def start(self, stop_event, *, adapters=None, loop=None, interval=60):
        stop_event.wait()
"""


def cli(*args: str) -> Result:
    """Run the CLI in-process; stdout and stderr stay separate (click >= 8.2)."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def stderr_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file under ``root`` with its bytes (directories map to None)."""
    out: dict[str, bytes | None] = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if rel.endswith("-shm"):
            continue  # SQLite's shared-memory index: a reader updates it, it holds no data
        out[rel] = None if p.is_dir() else p.read_bytes()
    return out


def store_state() -> object:
    """The configured store's state (``jobs.json`` bytes; a database's rows): equal = unwritten."""
    return stores.snapshot()


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TZ", "UTC")
    return env


def cronkit(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m cron ARGS`` as a real process (CRONKIT_HOME from the environment)."""
    return subprocess.run(
        [sys.executable, "-m", "cron", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=REPO,
        timeout=timeout,
    )


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
