"""`cronkit explain ID` and cron.explain: why a job did (not) fire, in plain sentences."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cron import jobs, paths
from cron.errors import JobNotFoundError
from cron.explain import explain_job, format_explanation
from cron.procinfo import hostname, process_start_time
from tests.cli._helpers import cli, snapshot, stderr_lines
from tests.support.stores import drop_json_ledger, edit_job

NOW = datetime(2026, 11, 25, 7, 56, tzinfo=UTC)  # a Wednesday


def _fake_live_ticker() -> None:
    """The files a healthy built-in ticker in this very process would have written."""
    d = paths.cron_dir(create=True)
    pid = os.getpid()
    (d / "ticker.pid").write_text(
        json.dumps(
            {
                "pid": pid,
                "start": process_start_time(pid),
                "host": hostname(),
                "provider": "builtin",
                "started_at": datetime.now(UTC).isoformat(),
            }
        )
    )
    now = time.time()
    (d / "ticker_heartbeat").write_text(f"{now - 1:.3f}\n")
    (d / "ticker_last_success").write_text(f"{now - 1:.3f}\n")


def _standup() -> dict[str, Any]:
    return jobs.create_job(
        "0 9 * * 1-5", "echo standup", name="standup", tz="Europe/Berlin", now=NOW
    )


def _set_claim(job_id: str, claim: dict[str, Any]) -> None:
    """Give a job a fire_claim as a run elsewhere would have left it."""
    edit_job(job_id, lambda job: job.update(fire_claim=claim))


# -- the data -------------------------------------------------------------------------------------


def test_a_scheduled_job_without_a_ticker_will_not_fire(home: Path) -> None:
    job = _standup()
    exp = explain_job(job["id"], now=NOW)
    assert exp.will_fire is False
    assert exp.ticker["state"] == "stopped"
    assert exp.zone == "Europe/Berlin" and exp.kind == "cron"
    assert exp.next_run_at == "2026-11-25T08:00:00+00:00"
    assert exp.next_run_local == "2026-11-25T09:00:00+01:00"
    assert exp.next_run_in == 240.0
    assert exp.verdict == (
        "will NOT fire at its next slot, 2026-11-25 09:00:00 +01:00 (in 4m): the ticker is stopped"
    )
    assert exp.claim is None and exp.recent == []
    lines = format_explanation(exp, now=NOW)
    assert lines[0] == f"Job {job['id']} (standup) {exp.verdict}."
    assert (
        "  Its next slot is 2026-11-25 09:00:00 +01:00 (Europe/Berlin), "
        "2026-11-25 08:00:00 UTC, in 4m."
    ) in lines
    assert "  Its schedule is '0 9 * * 1-5', read on the wall clock of Europe/Berlin." in lines
    assert "  It has not run yet." in lines
    assert "  No run holds its claim." in lines
    assert lines[-1].startswith("  No ticker is running: jobs will NOT fire")


def test_with_a_running_ticker_it_will_fire(home: Path) -> None:
    _fake_live_ticker()
    now = datetime.now(UTC)
    job = jobs.create_job("every 1h", "true", name="hourly", now=now)
    exp = explain_job(job["id"], now=now)
    assert exp.will_fire is True
    assert exp.verdict.startswith("will fire next at ") and exp.verdict.endswith("(in 1h)")
    lines = format_explanation(exp, now=now)
    assert lines[1] == "  Its schedule is 'every 1h'."
    assert lines[-1].startswith(f"  The ticker is running (pid {os.getpid()}, last heartbeat ")
    assert lines[-1].endswith("so due jobs fire.")


def test_an_overdue_job(home: Path) -> None:
    _fake_live_ticker()
    now = datetime.now(UTC)
    job = jobs.create_job("every 1h", "true", now=now - timedelta(hours=1, seconds=30))
    exp = explain_job(job["id"], now=now)
    assert exp.will_fire is True
    assert exp.next_run_in is not None and -31 < exp.next_run_in < -29
    assert exp.verdict.startswith("is overdue: its slot ")
    assert any(line.endswith(": 30s overdue.") for line in format_explanation(exp, now=now))


def test_a_paused_job_says_why_and_how_to_resume(home: Path) -> None:
    job = _standup()
    jobs.pause_job(job["id"], reason="holidays", now=NOW)
    exp = explain_job(job["id"], now=NOW + timedelta(minutes=1))
    assert exp.will_fire is False and exp.verdict == "will not fire: it is paused"
    assert exp.paused_reason == "holidays"
    lines = format_explanation(exp)
    assert (
        "  It is paused since 2026-11-25 08:56:00 +01:00 (1m ago), reason: holidays; "
        f"'cronkit resume {job['id']}' fires it again."
    ) in lines
    assert "  It has no next slot." in lines


def test_a_completed_job_will_not_fire_again(home: Path) -> None:
    job = jobs.create_job("in 1m", "true", now=NOW)
    fire = NOW + timedelta(minutes=1)
    token = jobs.claim_job_for_fire(job["id"], now=fire)
    assert token is not None
    assert jobs.mark_job_run(job["id"], token, success=True, now=fire)
    exp = explain_job(job["id"], now=fire + timedelta(seconds=5))
    assert exp.state == "completed" and exp.will_fire is False
    assert exp.verdict == "will not fire again: it is completed"
    lines = format_explanation(exp)
    assert "  Its last run, 2026-11-25 07:57:00 +00:00 (5s ago), ended ok." in lines
    assert ("  Its last 1 recorded slot, newest first:") in lines


def test_a_live_claim_names_its_owner(home: Path) -> None:
    _fake_live_ticker()
    job = jobs.create_job(
        "every 1h", "sleep 60", name="long", now=datetime.now(UTC) - timedelta(hours=1)
    )
    slot = job["next_run_at"]
    token = jobs.claim_job_for_fire(job["id"])
    assert token is not None
    claimed = jobs.get_job(job["id"])
    assert claimed is not None
    owner = claimed["fire_claim"]["by"]
    exp = explain_job(job["id"], now=datetime.now(UTC) + timedelta(seconds=10))
    assert exp.claim is not None
    assert exp.claim.live and not exp.claim.owner_gone
    assert exp.claim.by == owner and exp.claim.token == token and exp.claim.scheduled_at == slot
    assert exp.verdict.startswith("is running now (a run holds its claim); its next slot is ")
    (sentence,) = [x for x in format_explanation(exp) if "holds its claim" in x and "by" in x]
    assert sentence.startswith("  A run holds its claim, taken 10s ago by " + owner)
    assert "lapses in 4m 50s unless the run refreshes it" in sentence

    # Past claim_ttl (300 s) the same claim is stale: the next fire takes it over.
    later = explain_job(job["id"], now=datetime.now(UTC) + timedelta(seconds=400))
    assert later.claim is not None and not later.claim.live
    (sentence,) = [x for x in format_explanation(later) if "claim" in x and owner in x]
    assert sentence.startswith(f"  A stale claim is left by {owner} (taken 6m")
    assert sentence.endswith("claim_ttl is 300s): the next fire takes it over.")


def test_a_claim_whose_owner_process_is_gone(home: Path) -> None:
    job = jobs.create_job("every 1h", "true", now=NOW)
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid now names no process
    _set_claim(
        job["id"],
        {
            "token": "t" * 32,
            "at": (NOW - timedelta(seconds=20)).isoformat(),
            "by": f"{hostname()}:{gone.pid}:1",
            "scheduled_at": NOW.isoformat(),
        },
    )
    exp = explain_job(job["id"], now=NOW)
    assert exp.claim is not None and exp.claim.live and exp.claim.owner_gone
    text = " ".join(format_explanation(exp))
    assert "its owner process is gone, so the claim is released once it lapses" in text


def test_the_last_slots_come_from_the_ledger_newest_first(home: Path) -> None:
    job = jobs.create_job("every 1h", "echo out; exit 3", name="flaky")
    for _ in range(3):
        assert cli("run", "flaky").exit_code == 1
    exp = explain_job(job["id"], limit=2)
    assert [r["status"] for r in exp.recent] == ["error", "error"]
    assert exp.recent[0]["claimed_at"] >= exp.recent[1]["claimed_at"]
    assert exp.failure_streak == 3
    lines = format_explanation(exp)
    assert "  Its last 2 recorded slots, newest first:" in lines
    rows = [x for x in lines if x.startswith("    ")]
    assert len(rows) == 2
    assert all(": error - exit status 3 (manual, took " in x for x in rows)
    assert any(
        x.endswith("ended error (exit status 3); 3 slots in a row have failed.") for x in lines
    )
    assert explain_job(job["id"], limit=0).recent == []


def test_unknown_id_is_job_not_found(home: Path) -> None:
    with pytest.raises(JobNotFoundError):
        explain_job("feedfacecafe")


# -- the verb -------------------------------------------------------------------------------------


def test_explain_by_name_prints_sentences_and_writes_nothing(home: Path) -> None:
    job = _standup()
    drop_json_ledger()  # the create event wrote one; reading must not create it again
    before = snapshot(home)
    r = cli("explain", "standup")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"Job {job['id']} (standup) will NOT fire at its next slot, ")
    assert lines[0].endswith(": the ticker is stopped.")
    assert any(x.startswith("  Its next slot is ") and "(Europe/Berlin)" in x for x in lines)
    assert r.stderr == ""
    assert snapshot(home) == before
    assert not paths.executions_path().exists()  # reading does not create the ledger


def test_explain_json(home: Path) -> None:
    job = _standup()
    r = cli("explain", job["id"], "--json")
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["id"] == job["id"] and data["name"] == "standup"
    assert data["will_fire"] is False
    assert data["next_run_at"] == job["next_run_at"]
    assert data["ticker"]["state"] == "stopped"
    assert data["claim"] is None and data["recent"] == []
    assert set(data) >= {
        "schedule",
        "kind",
        "zone",
        "state",
        "enabled",
        "verdict",
        "next_run_local",
        "next_run_in",
        "last_status",
        "failure_streak",
    }


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["explain", "nope"], "no job with id or name 'nope'"),
        (["explain", "feedfacecafe", "--json"], "no job with id or name 'feedfacecafe'"),
        (["explain", "twin"], "the name 'twin' matches 2 jobs"),
        (["explain", "standup", "--limit", "-1"], "--limit"),
    ],
)
def test_bad_input_is_one_line_exit_2(home: Path, args: list[str], expect: str) -> None:
    _standup()
    jobs.create_job("every 1h", "true", name="twin")
    jobs.create_job("every 1h", "true", name="twin")
    before = snapshot(home)
    r = cli(*args)
    assert r.exit_code == 2
    (line,) = stderr_lines(r)
    assert line.startswith("cronkit: error: ") and expect in line, line
    assert r.stdout == ""
    assert snapshot(home) == before
