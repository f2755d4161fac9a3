"""End to end: ``cron.provider: crontab``, no gateway, the real cron daemon fires the job.

``cronkit add`` (the CLI, in a subprocess) writes the crontab line through
``on_jobs_changed``; the daemon runs ``python -m cron fire ID --scheduled-at
<minute>`` at the next minute; the ledger gets exactly one ``ok`` row for that
slot; a duplicate ``fire`` of the same slot is a no-op (exit 0, one line).

Needs the daemon running (``.ci/run`` / ``tests/integration/ensure_cron.sh``
start it): if it is not, this test FAILS rather than skips — a green run must
mean cron really fired the job. The job must really run with access to the
test's home, so this uses the invoking user's (on CI: root's) own crontab,
saved before and restored byte for byte after; the provider itself never
touches a line outside its block either way.

Takes up to ~70 s of wall time: it waits for a real minute boundary.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cron import executions, jobs
from cron.providers.crontab import table
from tests.conftest import write_config
from tests.integration.conftest import CrontabTarget

pytestmark = pytest.mark.integration

FIRE_DEADLINE = 70.0  # seconds from `cronkit add` to the ok row


def _daemon_running() -> bool:
    for name in ("cron", "crond"):
        if subprocess.run(["pgrep", "-x", name], capture_output=True).returncode == 0:
            return True
    return False


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "cron", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def _clear_of_minute_edge() -> None:
    """Start well inside a minute, so the crontab is installed before the next boundary."""
    second = datetime.now(UTC).second
    if second > 50:
        time.sleep(61 - second)


def _diagnose(home: Path, job_id: str) -> str:
    log = home / "cron" / "crontab.log"
    return (
        f"cron did not fire job {job_id} within {FIRE_DEADLINE:.0f}s; ledger: "
        f"{executions.list_executions(job_id)}; crontab.log: "
        f"{log.read_text() if log.exists() else '(empty)'}"
    )


def _ok_rows(job_id: str) -> list[dict[str, Any]]:
    return [r for r in executions.list_executions(job_id) if r["status"] == "ok"]


def test_cli_job_fires_once_through_the_system_cron(
    home: Path, tmp_path: Path, crontab_binary: str
) -> None:
    if not _daemon_running():
        pytest.fail(
            "the cron daemon is not running: .ci/run must start it "
            "('service cron start', or run tests/integration/ensure_cron.sh)"
        )
    own = CrontabTarget(crontab_binary, None)
    saved = own.read()
    try:
        write_config(home, "cron:\n  provider: crontab\n")
        marker = tmp_path / "fired.txt"
        _clear_of_minute_edge()
        started = time.monotonic()
        added = cli(
            "add",
            "* * * * *",
            "--name",
            "e2e-every-minute",
            "--",
            f'echo "$CRONKIT_SCHEDULED_AT" >> {shlex.quote(str(marker))}',
        )
        match = re.search(r"added job ([0-9a-f]{12})", added.stdout)
        assert match, added.stdout
        job_id = match.group(1)
        job = jobs.get_job(job_id)
        assert job is not None
        slot = job["next_run_at"]

        # The CLI converged the crontab by itself (on_jobs_changed), outside any gateway.
        block = table.parse(own.read() or "", str(home.resolve())).block
        assert block is not None and job_id in table.block_job_ids(block)
        status = json.loads(cli("status", "--json").stdout)
        assert (status["state"], status["provider"], status["gateway_pid"]) == (
            "external",
            "crontab",
            None,
        )
        assert status["detail"].startswith("crontab block in sync (1 job line)"), status

        while not _ok_rows(job_id):
            assert time.monotonic() - started < FIRE_DEADLINE, _diagnose(home, job_id)
            time.sleep(0.5)
        first = _ok_rows(job_id)[-1]
        assert (first["scheduled_at"], first["source"]) == (slot, "crontab")

        # A duplicate delivery of the same slot, as any external scheduler might send.
        dup = cli("fire", job_id, "--scheduled-at", slot)
        assert dup.returncode == 0
        assert len(dup.stdout.strip().splitlines()) == 1, dup.stdout
        assert dup.stdout.startswith("not fired:"), dup.stdout

        same_slot = [r for r in executions.list_executions(job_id) if r["scheduled_at"] == slot]
        assert [r["status"] for r in same_slot] == ["ok"]
        assert marker.read_text().splitlines().count(slot) == 1

        cli("remove", job_id)
        assert own.read() == saved  # the block is gone, every other byte as it was
    finally:
        own.write(saved)
    assert own.read() == saved
