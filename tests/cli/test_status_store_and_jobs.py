"""SPEC §12 status additions: an unreadable store fails at once; failing jobs and runaway
runs are listed; the exit code stays the ticker's."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cron import executions, jobs, paths
from cron.procinfo import hostname, owner_id, process_start_time
from cron.status import ticker_status
from tests.cli._helpers import cli
from tests.support.stores import drop_json_ledger


def _fake_live_ticker(*, beat_age: float = 1.0, success_age: float = 1.0) -> None:
    """Files a healthy built-in ticker in this very process would have written."""
    d = paths.cron_dir(create=True)
    pid = os.getpid()
    (d / "ticker.pid").write_text(
        json.dumps(
            {
                "pid": pid,
                "start": process_start_time(pid),
                "host": hostname(),
                "provider": "builtin",
            }
        )
    )
    now = time.time()
    (d / "ticker_heartbeat").write_text(f"{now - beat_age:.3f}\n")
    (d / "ticker_last_success").write_text(f"{now - success_age:.3f}\n")


def _fail(job_id: str, times: int, error: str) -> None:
    for _ in range(times):
        token = jobs.claim_job_for_fire(job_id, force=True)
        assert token is not None
        assert jobs.mark_job_run(job_id, token, success=False, error=error)


def test_a_corrupt_store_under_a_healthy_ticker_is_failing_at_once(
    home: Path, json_store: None
) -> None:
    # About a corrupt jobs.json: the JSON store is pinned.
    jobs.create_job("every 1h", "true", name="a")
    _fake_live_ticker(beat_age=1, success_age=1)
    assert cli("status").exit_code == 0
    paths.jobs_path().write_bytes(b"{broken")
    r = cli("status")
    assert r.exit_code == 1, r.stdout
    first = r.stdout.splitlines()[0]
    assert first.startswith(
        "✗ ticker FAILING: the job store cannot be read — jobs are NOT "
        "firing: cannot parse job store "
    )
    assert str(paths.jobs_path()) in first
    assert re.search(r"^  job store: +UNREADABLE: cannot parse job store", r.stdout, re.M)
    data = json.loads(cli("status", "--json").stdout)
    assert data["state"] == "failing" and data["healthy"] is False
    assert data["store_error"].startswith("cannot parse job store")


def test_failing_jobs_are_listed_worst_first_at_most_five_and_exit_stays_the_tickers(
    home: Path,
) -> None:
    _fake_live_ticker()
    made = [jobs.create_job("every 1h", "false", name=f"job{i}") for i in range(7)]
    for i, job in enumerate(made[:6]):
        _fail(job["id"], i + 1, f"exit status {i + 1}")
    r = cli("status")
    assert r.exit_code == 0, r.stdout  # the ticker is running: failing jobs do not change it
    assert r.stdout.splitlines()[0].startswith("✓ ticker running")
    assert re.search(r"^  failing jobs: +6$", r.stdout, re.M)
    listed = [line for line in r.stdout.splitlines() if line.startswith("    ✗ ")]
    assert listed == [
        f"    ✗ {made[i]['id']} (job{i}): {i + 1} failed run{'s' if i else ''} in a row; "
        f"last error: exit status {i + 1}"
        for i in (5, 4, 3, 2, 1)
    ]
    assert "    ... and 1 more ('cronkit list' shows them)" in r.stdout
    data = json.loads(cli("status", "--json").stdout)
    assert data["failing_jobs_total"] == 6
    assert [j["name"] for j in data["failing_jobs"]] == ["job5", "job4", "job3", "job2", "job1"]

    # A stalled ticker keeps its own exit code too.
    _fake_live_ticker(beat_age=1000, success_age=1000)
    assert cli("status").exit_code == 1


def test_a_run_past_its_timeout_is_listed_as_runaway(home: Path) -> None:
    _fake_live_ticker()
    job = jobs.create_job("every 1h", "sleep 1", name="slow", timeout=5)
    token = jobs.claim_job_for_fire(job["id"], force=True)
    assert token is not None
    started = datetime.now(UTC) - timedelta(seconds=65)
    executions.mark_running(token, job_id=job["id"], owner=owner_id(), now=started)
    r = cli("status")
    assert r.exit_code == 0
    assert re.search(r"^  runaway runs: +1 \(still going past their timeout\)$", r.stdout, re.M)
    assert (
        f"    ✗ {job['id']} (slow): running 1m 5s, past its 5s timeout, in a thread of "
        f"pid {os.getpid()} on {hostname()}; the job holds its claim until the run ends"
    ) in r.stdout
    # Within its timeout a run is not runaway.
    assert ticker_status(now=started.timestamp() + 4).runaway_runs == []
    # Nor is one whose owner is gone: recovery settles it, it is not running any more.
    dead = subprocess.Popen(["true"])
    dead.wait()
    executions.mark_running(
        token, job_id=job["id"], owner=f"{hostname()}:{dead.pid}:1", now=started
    )
    assert ticker_status().runaway_runs == []


def test_status_with_no_ledger_writes_nothing(home: Path, json_store: None) -> None:
    # About executions.db beside jobs.json (on SQLite the ledger is the store's own file).
    _fake_live_ticker()
    jobs.create_job("every 1h", "true", name="a")
    drop_json_ledger()  # the create event wrote one; this test is about a home without
    assert not paths.executions_path().exists()
    assert cli("status").exit_code == 0
    assert not paths.executions_path().exists()


@pytest.mark.slow
def test_issue_case_3_a_live_gateway_over_a_corrupt_store(home: Path, json_store: None) -> None:
    """Issue 12, case 3 as written: a running gateway, then ``jobs.json`` broken."""
    from tests.phase4._support import start_gateway

    jobs.create_job("every 1h", "true", name="a")
    gw = start_gateway(home, "--interval", "0.2")
    try:
        deadline = time.monotonic() + 10
        while cli("status").exit_code != 0:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        paths.jobs_path().write_bytes(b"{broken")
        r = cli("status")
        assert r.exit_code == 1, r.stdout
        assert "the job store cannot be read" in r.stdout.splitlines()[0]
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(gw.url + "/healthz", timeout=10)
        assert err.value.code == 503
        err.value.close()
    finally:
        gw.stop(signal.SIGTERM)
