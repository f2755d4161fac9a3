"""SPEC §12 last bullet: after a stall, ``status`` says how many slots came due and what
became of them (from the audit)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cron import audit, jobs, paths, scheduler
from cron.procinfo import hostname, process_start_time
from cron.status import ticker_status
from tests.cli._helpers import cli

ACTION = {"kind": "python", "target": "tests.properties._actions:noop"}


def _live_ticker_pid() -> None:
    pid = os.getpid()
    (paths.cron_dir(create=True) / "ticker.pid").write_text(
        json.dumps(
            {
                "pid": pid,
                "start": process_start_time(pid),
                "host": hostname(),
                "provider": "builtin",
            }
        )
    )


def test_status_reports_what_a_stall_cost(home: Path) -> None:
    now = datetime.now(UTC)
    start = now - timedelta(hours=3)
    every = jobs.create_job("every 1m", ACTION, now=start)
    skip = jobs.create_job("every 5m", ACTION, catch_up="skip", now=start)
    t = start
    for _ in range(60):
        t += timedelta(minutes=1)
        scheduler.tick(now=t)
    # The last beat just after the tick at now - 2 h; then nothing for two hours.
    jobs.record_ticker_heartbeat(now=t + timedelta(seconds=1))
    _live_ticker_pid()

    during = ticker_status(now=now)
    assert during.state == "stalled"
    assert during.stall is not None and during.stall["ongoing"] is True
    # 120 + 24 slots came due and none was decided: all still waiting for the ticker.
    assert (during.stall["slots"], during.stall["waiting"], during.stall["fired"]) == (144, 144, 0)

    # The ticker comes back: it notes the gap before its first beat, then ticks.
    audit.note_ticker_start(now=now.timestamp())
    jobs.record_ticker_heartbeat(now=now)
    assert scheduler.tick(now=now) == 1
    after = ticker_status(now=now + timedelta(seconds=5))
    assert after.state == "running"
    assert after.stall is not None
    assert after.stall["ongoing"] is False
    assert {
        k: after.stall[k]
        for k in (
            "slots",
            "fired",
            "replaced_by_late_fire",
            "missed",
            "skipped",
            "waiting",
            "lost",
            "double",
        )
    } == {
        "slots": 144,
        "fired": 1,
        "replaced_by_late_fire": 119,
        "missed": 24,
        "skipped": 0,
        "waiting": 0,
        "lost": 0,
        "double": 0,
    }
    assert every["id"] != skip["id"]

    r = cli("status")
    line = next(x for x in r.stdout.splitlines() if x.strip().startswith("after stall:"))
    assert (
        "144 slots came due: 1 fired (late, once each), 119 replaced by those late fires, "
        "24 missed, 0 skipped"
    ) in line
    assert json.loads(cli("status", "--json").stdout)["stall"]["slots"] == 144


def test_no_stall_no_line(home: Path) -> None:
    now = datetime.now(UTC)
    jobs.create_job("every 1m", ACTION, now=now - timedelta(minutes=5))
    jobs.record_ticker_heartbeat(now=now - timedelta(seconds=3))
    _live_ticker_pid()
    audit.note_ticker_start(now=now.timestamp())  # a fresh beat: no gap is recorded
    assert not (paths.cron_dir() / audit.GAP_FILE).exists()
    st = ticker_status(now=now)
    assert st.stall is None
    assert not any(x.strip().startswith("after stall:") for x in cli("status").stdout.splitlines())
