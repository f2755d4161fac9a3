"""``add``/``edit --retries N --retry-backoff DURATION``, ``show``, ``history``'s attempt."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cron import jobs, scheduler
from cron.retry import FakeClock, RetryTiming
from tests.cli._helpers import cli, snapshot, stderr_lines


def _added(*args: str) -> dict:
    r = cli("add", "every 1h", "--json", *args, "--", "true")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def test_add_with_retries_stores_the_given_keys(home: Path) -> None:
    job = _added("--retries", "3", "--retry-backoff", "2m")
    assert job["retry"] == {"max": 3, "backoff": 120}
    assert "retry" not in _added("--name", "plain")
    r = cli("show", job["id"])
    assert "retries:" in r.stdout and "up to 3, backoff 120s doubling, at most 3600s" in r.stdout


def test_edit_retries_merges_and_default_removes(home: Path) -> None:
    job = _added("--retries", "2")
    r = cli("edit", job["id"], "--retry-backoff", "45s", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["retry"] == {"max": 2, "backoff": 45}
    r = cli("edit", job["id"], "--retries", "default", "--json")
    assert json.loads(r.stdout)["retry"] == {"backoff": 45}
    r = cli("edit", job["id"], "--retry-backoff", "default", "--json")
    assert "retry" not in json.loads(r.stdout)


def test_bad_retry_options_exit_2_one_line_nothing_written(home: Path) -> None:
    _added("--name", "keep")
    before = snapshot(home)
    for args in (
        ["add", "every 1h", "--retries", "many", "--", "true"],
        ["add", "every 1h", "--retries", "-1", "--", "true"],
        ["add", "every 1h", "--retry-backoff", "soon", "--", "true"],
        ["edit", "keep", "--retries", "1.5"],
        ["edit", "keep", "--retry-backoff", "3 parsecs"],
    ):
        r = cli(*args)
        assert r.exit_code == 2, (args, r.stdout)
        [line] = stderr_lines(r)
        assert "--retr" in line, line
        assert snapshot(home) == before


def test_history_shows_each_attempt(home: Path, tmp_path: Path) -> None:
    counter = tmp_path / "n"
    job = jobs.create_job(
        "every 1h",
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; "
        f'[ "$n" -gt 1 ]',
        name="flaky",
        retry={"max": 2, "backoff": 5},
        now=datetime.now(UTC) - timedelta(hours=1, seconds=1),
    )
    clock = FakeClock(datetime.now(UTC))
    previous = scheduler.set_retry_timing(RetryTiming(clock, random.Random(1)))
    try:
        assert scheduler.tick(now=clock.now()) == 1
    finally:
        scheduler.set_retry_timing(previous)
    r = cli("history", job["id"])
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "ATTEMPT" in lines[0].split()
    col = lines[0].index("ATTEMPT")
    assert [ln[col:].split()[0] for ln in lines[1:]] == ["2", "1"]  # newest first
    rows = json.loads(cli("history", job["id"], "--json").stdout)["executions"]
    assert [(x["attempt"], x["status"]) for x in rows] == [(2, "ok"), (1, "error")]


def test_add_refuses_a_name_an_active_job_has(home: Path) -> None:
    first = _added("--name", "sync")
    before = snapshot(home)
    r = cli("add", "every 2h", "--name", "sync", "--", "true")
    assert r.exit_code == 2
    [line] = stderr_lines(r)
    assert "'sync'" in line and first["id"] in line and "--allow-duplicate-name" in line
    assert snapshot(home) == before
    twin = _added("--name", "sync", "--allow-duplicate-name")
    assert twin["id"] != first["id"]
    # A paused job's name is free: only active jobs count.
    solo = _added("--name", "solo")
    jobs.pause_job(solo["id"])
    assert _added("--name", "solo")["name"] == "solo"


def test_run_reports_the_slots_last_attempt(home: Path, tmp_path: Path) -> None:
    counter = tmp_path / "n"
    # backoff 0: the retry starts at once, on the real clock, with no sleep at all.
    job = jobs.create_job(
        "every 1h",
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; "
        f'[ "$n" -gt 1 ]',
        name="flaky",
        retry={"max": 1, "backoff": 0},
    )
    r = cli("run", job["id"])
    assert r.exit_code == 0, r.stdout + r.stderr
    assert ": ok in " in r.stdout and "(attempt 2)" in r.stdout
    assert counter.read_text().strip() == "2"
