"""``status`` over (ticker alive?, heartbeat age, success age, provider), with injected time.

The ticker's files are written by hand, the way a live, dead or pid-reused
ticker leaves them; ``ticker_status(now=T)`` is checked with the injected
clock, and the real CLI is checked against the same files dated from the real
clock (ages far from every threshold, so the wall clock cannot flip a verdict).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from cron import paths
from cron.procinfo import hostname, process_start_time
from cron.status import EXIT_CODES, ticker_status
from tests.cli._helpers import (
    FAKE_EXTERNAL_PLUGIN,
    UNAVAILABLE_PLUGIN,
    cli,
)
from tests.conftest import install_plugin, write_config

T = 1_900_000_000.0  # the injected "now"
FRESH, OLD = 5.0, 1000.0  # stale_after is 200 s by default

TICKERS = ["alive", "dead", "reused", "other-host", "absent"]
AGES = [None, FRESH, OLD]
PROVIDERS = ["builtin", "external", "unavailable", "unknown"]


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _write_pid_file(ticker: str) -> None:
    d = paths.cron_dir(create=True)
    me = os.getpid()
    info = {"pid": me, "start": process_start_time(me), "host": hostname(), "provider": "builtin"}
    if ticker == "absent":
        return
    if ticker == "dead":
        info["pid"] = _dead_pid()
    elif ticker == "reused":
        info["start"] = "1"  # our pid, but not the process that wrote the file
    elif ticker == "other-host":
        info["host"] = "not-" + hostname()
    (d / "ticker.pid").write_text(json.dumps(info) + "\n")


def _write_ages(now: float, beat: float | None, success: float | None) -> None:
    d = paths.cron_dir(create=True)
    for name, age in (("ticker_heartbeat", beat), ("ticker_last_success", success)):
        path = d / name
        if age is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(f"{now - age:.3f}\n")


def _configure(home: Path, provider: str) -> None:
    if provider == "external":
        install_plugin(home, "fakeext", FAKE_EXTERNAL_PLUGIN)
        write_config(home, "cron:\n  provider: fakeext\n")
    elif provider == "unavailable":
        install_plugin(home, "fakeoff", UNAVAILABLE_PLUGIN)
        write_config(home, "cron:\n  provider: fakeoff\n")
    elif provider == "unknown":
        write_config(home, "cron:\n  provider: no-such-provider\n")


def expected_state(ticker: str, beat: float | None, success: float | None, provider: str) -> str:
    if provider == "external":
        return "external"  # heartbeat checks do not apply
    # An unusable provider falls back to the built-in, so the built-in is checked.
    if ticker != "alive":
        return "stopped"
    if beat is None:
        return "unknown"
    if beat > 200:
        return "stalled"
    if success is None or success > 200:
        return "failing"
    return "running"


VERDICT = {
    "running": "✓ ticker running (pid {pid}): last heartbeat 5s ago",
    "stalled": "✗ ticker STALLED: last heartbeat 1000s ago (> 200s) — jobs are NOT firing; "
    "restart the gateway",
    "failing": "✗ ticker FAILING: ticks are raising, ",
    "unknown": "? ticker state unknown: process {pid} is alive but has never written a heartbeat",
    "stopped": "✗ ticker stopped: no gateway or embedded ticker is running — jobs will NOT fire; "
    "start one with 'cronkit gateway'",
    "external": "✓ external provider 'fakeext' triggers jobs: fake external trigger in place",
}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("success", AGES, ids=lambda a: f"success={a}")
@pytest.mark.parametrize("beat", AGES, ids=lambda a: f"beat={a}")
@pytest.mark.parametrize("ticker", TICKERS)
def test_status_truth_table(
    home: Path, ticker: str, beat: float | None, success: float | None, provider: str
) -> None:
    _configure(home, provider)
    _write_pid_file(ticker)
    want = expected_state(ticker, beat, success, provider)

    # The library, with injected time.
    _write_ages(T, beat, success)
    st = ticker_status(now=T)
    assert st.state == want
    assert (
        st.exit_code
        == EXIT_CODES[want]
        == {
            "running": 0,
            "external": 0,
            "failing": 1,
            "stalled": 1,
            "stopped": 2,
            "unknown": 3,
        }[want]
    )
    assert st.healthy == (want in ("running", "external"))
    assert st.heartbeat_age == beat and st.success_age == success
    assert st.gateway_pid == (os.getpid() if ticker == "alive" else None)

    # The CLI, on the same files dated from the real clock.
    _write_ages(time.time(), beat, success)
    r = cli("status")
    assert r.exit_code == st.exit_code, r.stdout
    first = r.stdout.splitlines()[0]
    expected_first = VERDICT[want].format(pid=os.getpid())
    if want == "failing":
        assert first.startswith(expected_first), first
        clean = "never completed a clean tick" if success is None else "last clean tick 1000s ago"
        assert clean in first
    else:
        assert first == expected_first
    data = json.loads(cli("status", "--json").stdout)
    assert data["state"] == want
    assert data["provider"] == ("fakeext" if provider == "external" else "builtin")


@pytest.mark.parametrize(
    ("interval", "age", "state"),
    [
        (60, 200.0, "running"),  # the boundary itself is still fresh: stalled means "older than"
        (60, 200.5, "stalled"),
        (100, 310.0, "running"),  # stale_after is floored at 3 x interval + 20 = 320
        (100, 320.5, "stalled"),
    ],
)
def test_stale_after_boundary_and_floor(home: Path, interval: int, age: float, state: str) -> None:
    write_config(home, f"cron:\n  interval: {interval}\n  stale_after: 200\n")
    _write_pid_file("alive")
    _write_ages(T, age, min(age, 1.0))
    assert ticker_status(now=T).state == state


def test_stale_pid_file_is_named_when_stopped(home: Path) -> None:
    _write_pid_file("dead")
    _write_ages(time.time(), FRESH, FRESH)
    r = cli("status")
    assert r.exit_code == 2
    assert "stale pid file: pid" in r.stdout and "is not running" in r.stdout
    assert r.stdout.splitlines()[0].startswith("✗ ticker stopped")
