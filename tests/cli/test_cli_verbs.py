"""Every ``cronkit`` verb through click's CliRunner: human output, ``--json``, every error path.

An error path must exit 2 with exactly one non-empty stderr line (no traceback)
and leave ``CRONKIT_HOME`` byte-for-byte as it was — including "``jobs.json``
did not exist and still does not".
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cron import executions, jobs, paths
from cron.procinfo import hostname, process_start_time
from cron.store import get_store
from tests.cli._helpers import (
    FAKE_EXTERNAL_PLUGIN,
    cli,
    snapshot,
    stderr_lines,
    store_state,
)
from tests.conftest import install_plugin, write_config
from tests.support.stores import builtin_store_files, store_exists

ID_RE = re.compile(r"^[0-9a-f]{12}$")
TIME_RE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d"
NO_TICKER = "no ticker is running"


def _job(
    name: str = "alpha", schedule: str = "every 1h", command: str = "echo alpha", **kw: Any
) -> dict[str, Any]:
    return jobs.create_job(schedule, command, name=name, **kw)


def _due_job(name: str = "due", command: str = "echo due-output") -> dict[str, Any]:
    """A recurring job whose slot passed a second ago."""
    return jobs.create_job(
        "every 1h", command, name=name, now=datetime.now(UTC) - timedelta(seconds=3601)
    )


def _completed_job() -> dict[str, Any]:
    created = datetime.now(UTC) - timedelta(seconds=30)
    job = jobs.create_job("in 1s", "true", name="done", now=created)
    token = jobs.claim_job_for_fire(job["id"])
    assert token is not None
    assert jobs.mark_job_run(job["id"], token, success=True)
    done = jobs.get_job(job["id"])
    assert done is not None and done["state"] == "completed"
    return done


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
                "started_at": datetime.now(UTC).isoformat(),
            }
        )
    )
    now = time.time()
    (d / "ticker_heartbeat").write_text(f"{now - beat_age:.3f}\n")
    (d / "ticker_last_success").write_text(f"{now - success_age:.3f}\n")


def _assert_ok(result: Any) -> None:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.output


# -- add ------------------------------------------------------------------------------------------


def test_add_prints_id_and_next_run_and_warns_without_ticker(home: Path) -> None:
    r = cli("add", "every 2s", "--name", "hello", "--", "echo", "hello from cronkit")
    _assert_ok(r)
    first = r.stdout.splitlines()[0]
    m = re.fullmatch(r"added job ([0-9a-f]{12}) \(hello\)", first)
    assert m, r.stdout
    job = jobs.get_job(m.group(1))
    assert job is not None
    assert job["action"] == {"kind": "command", "command": "echo 'hello from cronkit'"}
    assert re.search(rf"next run: +{TIME_RE} \(in [12]s\)", r.stdout), r.stdout
    assert "schedule: every 2s" in r.stdout
    # The warning goes to stderr only, and the exit code stays 0.
    assert NO_TICKER in r.stderr and NO_TICKER not in r.stdout
    assert len(stderr_lines(r)) == 1


def test_add_json_is_the_created_job(home: Path) -> None:
    r = cli(
        "add",
        "0 9 * * 1-5",
        "--tz",
        "Europe/Berlin",
        "--name",
        "standup",
        "--repeat",
        "3",
        "--catch-up",
        "skip",
        "--timeout",
        "5",
        "--json",
        "--",
        "./notify.sh",
    )
    _assert_ok(r)
    job = json.loads(r.stdout)
    assert ID_RE.match(job["id"])
    assert job == jobs.get_job(job["id"])
    assert job["schedule"] == {
        "kind": "cron",
        "expr": "0 9 * * 1-5",
        "display": "0 9 * * 1-5",
        "tz": "Europe/Berlin",
    }
    assert job["repeat"] == {"times": 3, "completed": 0}
    assert job["catch_up"] == "skip" and job["timeout"] == 5.0
    assert job["action"] == {"kind": "command", "command": "./notify.sh"}


def test_add_single_argument_is_a_shell_line_verbatim(home: Path) -> None:
    r = cli("add", "every 1m", "--json", "--", "echo a && echo 'b c' | wc -l")
    _assert_ok(r)
    assert json.loads(r.stdout)["action"]["command"] == "echo a && echo 'b c' | wc -l"


def test_add_python_and_disabled(home: Path) -> None:
    r = cli("add", "in 30m", "--python", "json:dumps", "--disabled")
    _assert_ok(r)
    (job,) = jobs.list_jobs()
    assert job["action"] == {"kind": "python", "target": "json:dumps"}
    assert job["state"] == "paused" and job["next_run_at"] is None
    assert "next run: none (created paused" in r.stdout
    assert r.stderr == ""  # a paused job is not expected to fire: no ticker warning


def test_add_no_warning_when_a_ticker_runs(home: Path) -> None:
    _fake_live_ticker()
    r = cli("add", "every 1m", "--", "true")
    _assert_ok(r)
    assert r.stderr == ""


# -- list / show ----------------------------------------------------------------------------------


def test_list_human_json_and_all(home: Path) -> None:
    a = _job("alpha")
    b = _job("beta", "0 9 * * *")
    jobs.pause_job(b["id"], reason="maintenance")
    done = _completed_job()
    r = cli("list")
    _assert_ok(r)
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "SCHEDULE", "NEXT", "RUN", "LAST", "STATE"]
    assert len(lines) == 2 and lines[1].startswith(a["id"] + "  alpha")
    assert re.search(rf"{TIME_RE} \(in (59m|1h)", lines[1]), lines[1]
    assert NO_TICKER in r.stderr

    r = cli("list", "--all")
    _assert_ok(r)
    body = r.stdout
    assert a["id"] in body and b["id"] in body and done["id"] in body
    assert "paused" in body and "completed" in body
    # Columns are aligned: every row starts its NAME column at the same offset.
    rows = body.splitlines()
    assert len({row.index("  ") for row in rows[1:]}) == 1

    r = cli("list", "--json")
    _assert_ok(r)
    assert json.loads(r.stdout) == {"jobs": [jobs.get_job(a["id"])]}
    r = cli("list", "--all", "--json")
    assert [j["id"] for j in json.loads(r.stdout)["jobs"]] == [a["id"], b["id"], done["id"]]


def test_list_empty(home: Path) -> None:
    r = cli("list")
    _assert_ok(r)
    assert "no active jobs" in r.stdout
    assert r.stderr == ""  # nothing would fire anyway
    r = cli("list", "--all", "--json")
    _assert_ok(r)
    assert json.loads(r.stdout) == {"jobs": []}


def test_show_human_and_json_by_id_and_by_name(home: Path) -> None:
    job = _job("alpha", "every 90m", timeout=12)
    r = cli("show", "alpha")
    _assert_ok(r)
    out = r.stdout
    assert re.search(rf"^id: +{job['id']}$", out, re.M)
    assert re.search(r"^schedule: +every 90m$", out, re.M)
    assert re.search(r"^action: +echo alpha$", out, re.M)
    assert re.search(rf"^next run: +{TIME_RE} \(in 1h (29|30)m\)$", out, re.M), out
    assert re.search(r"^timeout: +12s$", out, re.M)
    assert re.search(r"^catch-up: +once \(config default\)$", out, re.M)
    r = cli("show", job["id"], "--json")
    _assert_ok(r)
    assert json.loads(r.stdout) == jobs.get_job(job["id"])


def test_show_includes_last_output(home: Path) -> None:
    job = _job("alpha", command="echo line-one; echo line-two")
    assert cli("run", job["id"]).exit_code == 0
    r = cli("show", job["id"])
    _assert_ok(r)
    assert "last output:" in r.stdout
    assert "  | line-one" in r.stdout and "  | line-two" in r.stdout
    assert re.search(r"^last run: +.* - ok$", r.stdout, re.M)


def test_times_are_shown_in_the_configured_zone(home: Path) -> None:
    write_config(home, "cron:\n  timezone: Asia/Kolkata\n")
    job = _job("alpha")
    r = cli("show", job["id"])
    _assert_ok(r)
    assert re.search(r"^next run: +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+05:30 \(in", r.stdout, re.M)


# -- edit / pause / resume / remove ---------------------------------------------------------------


def test_edit_fields(home: Path) -> None:
    job = _job("alpha")
    r = cli(
        "edit",
        "alpha",
        "--schedule",
        "every 5m",
        "--name",
        "renamed",
        "--command",
        "echo x",
        "--repeat",
        "7",
        "--catch-up",
        "skip",
        "--timeout",
        "9",
    )
    _assert_ok(r)
    assert r.stdout.startswith(f"updated job {job['id']} (renamed)")
    assert re.search(rf"next run: +{TIME_RE} \(in [45]m", r.stdout), r.stdout
    now = jobs.get_job(job["id"])
    assert now is not None
    assert now["schedule"]["display"] == "every 5m"
    assert now["action"] == {"kind": "command", "command": "echo x"}
    assert now["repeat"]["times"] == 7 and now["catch_up"] == "skip" and now["timeout"] == 9.0

    r = cli(
        "edit",
        job["id"],
        "--python",
        "json:loads",
        "--repeat",
        "forever",
        "--catch-up",
        "default",
        "--timeout",
        "default",
        "--json",
    )
    _assert_ok(r)
    edited = json.loads(r.stdout)
    assert edited == jobs.get_job(job["id"])
    assert edited["action"] == {"kind": "python", "target": "json:loads"}
    assert edited["repeat"]["times"] is None
    assert "catch_up" not in edited and "timeout" not in edited

    r = cli("edit", job["id"], "--schedule", "0 9 * * *", "--tz", "America/New_York", "--json")
    _assert_ok(r)
    assert json.loads(r.stdout)["schedule"]["tz"] == "America/New_York"


def test_pause_resume_remove(home: Path) -> None:
    job = _job("alpha")
    r = cli("pause", "alpha", "--reason", "maintenance")
    _assert_ok(r)
    assert r.stdout.strip() == f"paused job {job['id']} (alpha): maintenance"
    paused = jobs.get_job(job["id"])
    assert paused is not None and paused["state"] == "paused"
    assert paused["paused_reason"] == "maintenance"
    assert re.search(r"^paused: +.*: maintenance$", cli("show", "alpha").stdout, re.M)

    r = cli("resume", job["id"])
    _assert_ok(r)
    assert re.fullmatch(
        rf"resumed job {job['id']} \(alpha\); next run {TIME_RE} \(in (59m|1h)\)", r.stdout.strip()
    ), r.stdout
    resumed = jobs.get_job(job["id"])
    assert resumed is not None and resumed["state"] == "scheduled"

    r = cli("remove", "alpha")
    _assert_ok(r)
    assert r.stdout.strip() == f"removed job {job['id']} (alpha)"
    assert jobs.get_job(job["id"]) is None


# -- run / fire / tick ----------------------------------------------------------------------------


def test_run_success_prints_outcome_and_output_path(home: Path) -> None:
    job = _job("alpha", command="echo ran-it")
    r = cli("run", "alpha")
    _assert_ok(r)
    lines = r.stdout.splitlines()
    assert re.fullmatch(rf"ran job {job['id']} \(alpha\): ok in \d+\.\d\ds", lines[0]), lines
    assert lines[1].startswith("output: ")
    out = Path(lines[1].removeprefix("output: "))
    assert out.read_text() == "ran-it\n"
    (row,) = executions.list_executions(job["id"])
    assert row["status"] == "ok" and row["source"] == "manual"
    # A manual run does not consume the due slot of a job that is not due.
    after = jobs.get_job(job["id"])
    assert after is not None and after["next_run_at"] == job["next_run_at"]


def test_run_failure_exits_1(home: Path) -> None:
    job = _job("alpha", command="echo oops; exit 3")
    r = cli("run", job["id"])
    assert r.exit_code == 1
    assert re.match(rf"ran job {job['id']} \(alpha\): error in ", r.stdout)
    assert "Traceback" not in r.output
    after = jobs.get_job(job["id"])
    assert after is not None and after["last_status"] == "error"


def test_run_paused_job_runs_once_and_stays_paused(home: Path) -> None:
    job = _job("alpha")
    jobs.pause_job(job["id"])
    r = cli("run", "alpha")
    _assert_ok(r)
    assert "(the job stays paused)" in r.stdout
    after = jobs.get_job(job["id"])
    assert after is not None and after["state"] == "paused" and after["last_status"] == "ok"


def test_run_while_a_run_holds_the_claim_exits_1(home: Path) -> None:
    job = _job("alpha")
    assert jobs.claim_job_for_fire(job["id"], force=True) is not None
    before = store_state()
    r = cli("run", job["id"])
    assert r.exit_code == 1
    assert stderr_lines(r) == [
        "cronkit: error: not run: a run of this job is still in progress (live claim)"
    ]
    assert store_state() == before


def test_fire_due_job_runs_it(home: Path) -> None:
    job = _due_job()
    r = cli("fire", "due")
    _assert_ok(r)
    assert re.match(rf"fired job {job['id']} \(due\): ok in ", r.stdout)
    (row,) = executions.list_executions(job["id"])
    assert row["status"] == "ok" and row["source"] == "manual"
    assert row["scheduled_at"] == job["next_run_at"]


def test_fire_lost_claim_is_one_line_exit_0(home: Path) -> None:
    job = _job("alpha")
    before = store_state()
    r = cli("fire", "alpha")
    _assert_ok(r)
    assert len(r.stdout.splitlines()) == 1
    assert r.stdout.startswith(f"not fired: job {job['id']} (alpha): not due until ")
    assert store_state() == before

    due = _due_job()
    before = store_state()
    earlier = (datetime.fromisoformat(due["next_run_at"]) - timedelta(hours=1)).isoformat()
    r = cli("fire", due["id"], "--scheduled-at", earlier)
    _assert_ok(r)
    assert "already fired or superseded" in r.stdout and len(r.stdout.splitlines()) == 1
    assert store_state() == before

    jobs.pause_job(due["id"])
    r = cli("fire", due["id"])
    _assert_ok(r)
    assert r.stdout.strip().endswith(": job is paused")


def test_fire_source_is_the_configured_external_provider(home: Path) -> None:
    install_plugin(home, "fakeext", FAKE_EXTERNAL_PLUGIN)
    write_config(home, "cron:\n  provider: fakeext\n")
    job = _due_job()
    r = cli("fire", job["id"], "--scheduled-at", job["next_run_at"])
    _assert_ok(r)
    (row,) = executions.list_executions(job["id"])
    assert row["source"] == "fakeext" and row["status"] == "ok"


def test_tick(home: Path) -> None:
    r = cli("tick")
    _assert_ok(r)
    assert r.stdout.strip() == "tick: dispatched 0 jobs"
    job = _due_job()
    r = cli("tick")
    _assert_ok(r)
    assert r.stdout.strip() == "tick: dispatched 1 job"
    (row,) = executions.list_executions(job["id"])
    assert row["status"] == "ok" and row["source"] == "tick"


# -- next -----------------------------------------------------------------------------------------


def test_next_crosses_spring_forward(home: Path) -> None:
    # Sundays of March at 02:30 Berlin: the last one falls in the DST gap.
    r = cli("next", "30 2 * 3 0", "--tz", "Europe/Berlin", "-n", "10")
    _assert_ok(r)
    lines = r.stdout.splitlines()
    assert lines[0] == "schedule: 30 2 * 3 0   zone: Europe/Berlin"
    assert len(lines) == 11
    assert any(re.search(r" 02:30:00 \+01:00 \(in ", line) for line in lines)
    gap = [line for line in lines if " 03:00:00 +02:00 " in line]
    assert gap and "(UTC offset +01:00 -> +02:00)" in gap[0]

    r = cli("next", "30 2 * 3 0", "--tz", "Europe/Berlin", "-n", "10", "--json")
    _assert_ok(r)
    data = json.loads(r.stdout)
    assert data["zone"] == "Europe/Berlin"
    assert data["schedule"]["expr"] == "30 2 * 3 0"
    times = [datetime.fromisoformat(t) for t in data["times"]]
    assert len(times) == 10 and times == sorted(set(times))
    assert {t.utcoffset() for t in times} == {timedelta(hours=1), timedelta(hours=2)}


def test_next_interval_anchors_at_now_and_once(home: Path) -> None:
    before = datetime.now(UTC)
    r = cli("next", "every 90m", "-n", "3", "--json")
    _assert_ok(r)
    times = [datetime.fromisoformat(t) for t in json.loads(r.stdout)["times"]]
    assert len(times) == 3
    assert timedelta(minutes=90) <= times[0] - before < timedelta(minutes=90, seconds=5)
    assert times[2] - times[1] == times[1] - times[0] == timedelta(minutes=90)

    r = cli("next", "in 10m")
    _assert_ok(r)
    assert len(r.stdout.splitlines()) == 2 and "(in 10m)" in r.stdout or "(in 9m" in r.stdout

    r = cli("next", "2001-01-01T00:00")
    _assert_ok(r)
    assert "no fire times ahead" in r.stdout


# -- history --------------------------------------------------------------------------------------


def test_history_human_and_json(home: Path) -> None:
    r = cli("history")
    _assert_ok(r)
    assert r.stdout.strip() == "no runs recorded yet"
    assert not get_store().ledger().exists()  # reading history creates nothing

    a = _job("alpha", command="echo a")
    b = _job("beta", command="echo b; exit 1")
    cli("run", "alpha")
    cli("run", "beta")
    cli("run", "alpha")
    r = cli("history")
    _assert_ok(r)
    lines = r.stdout.splitlines()
    assert lines[0].split()[:5] == ["WHEN", "JOB", "STATUS", "SOURCE", "TOOK"]
    assert len(lines) == 4
    assert re.match(rf"{TIME_RE} \(.*\) +alpha +ok +manual +\d+\.\d\ds", lines[1]), lines[1]
    assert re.match(rf"{TIME_RE} \(.*\) +beta +error +manual", lines[2]), lines[2]

    r = cli("history", "alpha", "--limit", "1", "--json")
    _assert_ok(r)
    data = json.loads(r.stdout)
    assert list(data) == ["executions"] and len(data["executions"]) == 1
    row = data["executions"][0]
    assert row["job_id"] == a["id"] and row["status"] == "ok"
    assert set(row) >= {
        "id",
        "job_id",
        "job_name",
        "scheduled_at",
        "claimed_at",
        "started_at",
        "finished_at",
        "status",
        "source",
        "owner",
        "error",
        "output_path",
    }
    r = cli("history", b["id"], "--json")
    assert [x["status"] for x in json.loads(r.stdout)["executions"]] == ["error"]

    # A removed job's rows stay reachable by its id.
    cli("remove", b["id"])
    r = cli("history", b["id"])
    _assert_ok(r)
    assert " error " in r.stdout


# -- status / providers ---------------------------------------------------------------------------


def test_status_stopped_and_json(home: Path) -> None:
    _job("alpha")
    r = cli("status")
    assert r.exit_code == 2
    lines = r.stdout.splitlines()
    assert lines[0] == (
        "✗ ticker stopped: no gateway or embedded ticker is running — jobs will "
        "NOT fire; start one with 'cronkit gateway'"
    )
    assert re.search(r"^  active jobs: +1$", r.stdout, re.M)
    assert re.search(rf"^  next run: +{TIME_RE} \(in", r.stdout, re.M)
    assert r.stderr == ""
    r = cli("status", "--json")
    assert r.exit_code == 2
    data = json.loads(r.stdout)
    assert data["state"] == "stopped" and data["healthy"] is False and data["jobs_active"] == 1
    assert set(data) == {
        "state",
        "provider",
        "gateway_pid",
        "heartbeat_age",
        "success_age",
        "last_error",
        "jobs_active",
        "next_run_at",
        "stale_after",
        "detail",
        "healthy",
        "store_error",
        "failing_jobs",
        "failing_jobs_total",
        "runaway_runs",
        "stall",
        "nodes",
    }
    assert data["nodes"] == []  # a home's own store is not shared: no registry listed


def test_status_running(home: Path) -> None:
    _fake_live_ticker(beat_age=3, success_age=3)
    r = cli("status")
    assert r.exit_code == 0
    first = r.stdout.splitlines()[0]
    assert first == f"✓ ticker running (pid {os.getpid()}): last heartbeat 3s ago"
    assert re.search(r"^  heartbeat: +3s ago \(stale after 200s\)$", r.stdout, re.M)


# A corrupt jobs.json is how these tests make the store unreadable: JSON store only.
@pytest.mark.usefixtures("json_store")
def test_status_reports_a_corrupt_store(home: Path) -> None:
    paths.cron_dir(create=True)
    paths.jobs_path().write_bytes(b"{broken")
    r = cli("status")
    assert r.exit_code == 2
    assert re.search(r"^  job store: +UNREADABLE: cannot parse job store", r.stdout, re.M)
    assert json.loads(cli("status", "--json").stdout)["store_error"].startswith("cannot parse")


def test_status_hint_for_permission_denied(home: Path) -> None:
    _fake_live_ticker(beat_age=2, success_age=900)
    (paths.cron_dir() / "ticker_last_error").write_text(
        f"{time.time():.3f}\nPermissionError: [Errno 13] Permission denied: '{paths.jobs_path()}'\n"
    )
    r = cli("status")
    assert r.exit_code == 1
    first = r.stdout.splitlines()[0]
    assert first.startswith("✗ ticker FAILING: ticks are raising, last clean tick 900s ago")
    assert first.endswith("Permission denied: " + repr(str(paths.jobs_path())))
    assert re.search(
        r"^  hint: +the ticker cannot read or write .*jobs\.json: make it owned by", r.stdout, re.M
    )


def test_providers_human_and_json(home: Path) -> None:
    install_plugin(home, "fakeext", FAKE_EXTERNAL_PLUGIN)
    r = cli("providers")
    _assert_ok(r)
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["PROVIDER", "AVAILABLE", "DESCRIPTION"]
    assert lines[1].split()[:2] == ["builtin", "yes"]
    assert any(line.split()[:2] == ["fakeext", "yes"] for line in lines)
    assert lines[-1] == "selected: builtin (cron.provider is empty)"

    write_config(home, "cron:\n  provider: fakeext\n")
    r = cli("providers", "--json")
    _assert_ok(r)
    data = json.loads(r.stdout)
    assert data["configured"] == "fakeext" and data["resolved"] == "fakeext"
    assert [p["name"] for p in data["providers"]][:1] == ["builtin"]
    assert {"name": "fakeext", "description": "user", "available": True, "builtin": False} in data[
        "providers"
    ]

    write_config(home, "cron:\n  provider: nosuch\n")
    r = cli("providers")
    _assert_ok(r)
    assert r.stdout.splitlines()[-1] == (
        "selected: builtin - cron.provider = 'nosuch' is not found, so the built-in ticker runs"
    )


def test_no_arguments_prints_help(home: Path) -> None:
    r = cli()
    _assert_ok(r)
    for verb in (
        "add",
        "list",
        "show",
        "edit",
        "pause",
        "resume",
        "remove",
        "run",
        "fire",
        "tick",
        "next",
        "history",
        "status",
        "providers",
        "gateway",
        "explain",
        "install-service",
    ):
        assert re.search(rf"^  {verb} ", r.stdout, re.M), verb


# -- error paths ----------------------------------------------------------------------------------

BAD_INPUT: list[tuple[str, list[str], str]] = [
    ("bad schedule", ["add", "every banana", "--", "true"], "invalid schedule 'every banana'"),
    ("past one-shot", ["add", "2001-01-01T00:00", "--", "true"], "in the past"),
    ("no action", ["add", "every 1m"], "missing the action"),
    ("command and python", ["add", "every 1m", "--python", "json:dumps", "--", "true"], "not both"),
    ("bad env pair", ["add", "every 1m", "--env", "NOEQUALS", "--", "true"], "--env"),
    ("bad env name", ["add", "every 1m", "--env", "1X=a", "--", "true"], "invalid env '1X'"),
    (
        "reserved env",
        ["add", "every 1m", "--env", "CRONKIT_JOB_ID=x", "--", "true"],
        "cannot be overridden",
    ),
    (
        "env for python",
        ["add", "every 1m", "--python", "json:dumps", "--env", "A=b"],
        "applies to command jobs only",
    ),
    (
        "missing cwd",
        ["add", "every 1m", "--cwd", "/no/such/dir/zz", "--", "true"],
        "invalid cwd '/no/such/dir/zz': no such directory",
    ),
    ("malformed python target", ["add", "every 1m", "--python", "nocolon"], "pkg.mod:func"),
    ("repeat zero", ["add", "every 1m", "--repeat", "0", "--", "true"], "--repeat"),
    ("repeat text", ["add", "every 1m", "--repeat", "lots", "--", "true"], "--repeat"),
    ("bad zone", ["add", "0 9 * * *", "--tz", "Mars/Olympus", "--", "true"], "Mars/Olympus"),
    ("bad catch-up", ["add", "every 1m", "--catch-up", "never", "--", "true"], "--catch-up"),
    ("negative timeout", ["add", "every 1m", "--timeout", "-1", "--", "true"], "--timeout"),
    ("unknown option", ["add", "every 1m", "--bogus", "--", "true"], "--bogus"),
    ("empty name", ["add", "every 1m", "--name", " ", "--", "true"], "invalid name"),
    ("show unknown", ["show", "feedfacecafe"], "no job with id or name 'feedfacecafe'"),
    ("show json unknown", ["show", "nope", "--json"], "no job with id or name 'nope'"),
    ("edit unknown", ["edit", "nope", "--name", "x"], "no job with id or name 'nope'"),
    ("edit nothing", ["edit", "alpha"], "nothing to change"),
    (
        "edit both actions",
        ["edit", "alpha", "--command", "x", "--python", "json:dumps"],
        "not both",
    ),
    ("edit bad schedule", ["edit", "alpha", "--schedule", "61 * * * *"], "invalid schedule"),
    ("edit bad timeout", ["edit", "alpha", "--timeout", "soon"], "--timeout"),
    ("edit bad repeat", ["edit", "alpha", "--repeat", "-2"], "--repeat"),
    ("edit bad zone", ["edit", "alpha", "--tz", "Nowhere/Land"], "Nowhere/Land"),
    ("edit missing cwd", ["edit", "alpha", "--cwd", "/no/such/dir/zz"], "invalid cwd"),
    ("edit bad env", ["edit", "alpha", "--env", "=x"], "--env"),
    (
        "edit env onto python",
        ["edit", "alpha", "--python", "json:dumps", "--env", "A=b"],
        "applies to command jobs only",
    ),
    ("logs unknown", ["logs", "nope"], "no job with id or name"),
    ("logs unknown run", ["logs", "alpha", "--run", "feedface"], "has no run 'feedface'"),
    ("pause unknown", ["pause", "nope"], "no job with id or name"),
    ("pause completed", ["pause", "done"], "completed job cannot be paused"),
    ("resume unknown", ["resume", "nope"], "no job with id or name"),
    ("remove unknown", ["remove", "nope"], "no job with id or name"),
    ("run unknown", ["run", "nope"], "no job with id or name"),
    ("run completed", ["run", "done"], "is completed"),
    (
        "run via webhook without gateway",
        ["run", "alpha", "--via-webhook"],
        "no cronkit gateway webhook is reachable",
    ),
    ("fire unknown", ["fire", "nope"], "no job with id or name"),
    ("fire bad slot", ["fire", "alpha", "--scheduled-at", "yesterday"], "not an ISO-8601"),
    ("ambiguous name", ["show", "twin"], "matches 2 jobs"),
    ("next bad schedule", ["next", "*/0 * * * *"], "invalid schedule"),
    ("next zero", ["next", "every 1m", "-n", "0"], "-n"),
    ("next bad zone", ["next", "0 9 * * *", "--tz", "Atlantis/Capital"], "Atlantis/Capital"),
    ("history unknown", ["history", "nope"], "no job with id or name"),
    ("history bad limit", ["history", "--limit", "0"], "--limit"),
    ("unknown verb", ["frobnicate"], "frobnicate"),
    ("missing argument", ["show"], "Missing argument"),
    ("gateway bad port", ["gateway", "--port", "70000"], "--port"),
]


def _populate() -> None:
    _job("alpha")
    _completed_job()
    _job("twin")
    _job("twin")


@pytest.mark.parametrize("populated", [False, True], ids=["empty-home", "populated"])
@pytest.mark.parametrize(
    ("args", "expect"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    home: Path, populated: bool, args: list[str], expect: str
) -> None:
    if populated:
        _populate()
    before_jobs = store_state()
    before = snapshot(home)
    r = cli(*args)
    lines = stderr_lines(r)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert len(lines) == 1, lines
    assert lines[0].startswith("cronkit: error: ")
    assert "Traceback" not in r.output
    if populated:
        assert expect in lines[0], lines[0]
    else:  # the job the args name may not exist: either problem is a fine answer
        assert expect in lines[0] or "no job with id or name" in lines[0], lines[0]
    assert r.stdout == ""
    assert store_state() == before_jobs
    if before_jobs is None:
        assert not store_exists()
    assert snapshot(home) == before


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["list", "--all", "--json"],
        ["show", "alpha"],
        ["add", "every 1m", "--", "true"],
        ["edit", "alpha", "--name", "b"],
        ["pause", "alpha"],
        ["resume", "alpha"],
        ["remove", "alpha"],
        ["run", "alpha"],
        ["fire", "alpha"],
        ["tick"],
        ["history", "alpha"],
    ],
)
@pytest.mark.usefixtures("json_store")
def test_corrupt_store_exits_2_naming_the_file(home: Path, args: list[str]) -> None:
    paths.cron_dir(create=True)
    paths.jobs_path().write_bytes(b'{"version": 1, "jobs": [')
    before = snapshot(home)
    r = cli(*args)
    lines = stderr_lines(r)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert len(lines) == 1, lines
    assert f"cannot parse job store '{paths.jobs_path()}'" in lines[0]
    assert "move it aside" in lines[0]
    assert "Traceback" not in r.output
    assert snapshot(home) == before


CONFIG_PROBLEMS = {
    "yaml syntax": "cron:\n  interval: [1,\n",
    "wrong type": "cron:\n  interval: soon\n",
    "unknown key": "cron:\n  intervall: 5\n",
}


@pytest.mark.parametrize("problem", sorted(CONFIG_PROBLEMS))
@pytest.mark.parametrize(
    "args",
    [
        ["add", "every 1m", "--", "true"],
        ["list"],
        ["show", "alpha"],
        ["edit", "alpha", "--name", "x"],
        ["pause", "alpha"],
        ["resume", "alpha"],
        ["remove", "alpha"],
        ["run", "alpha"],
        ["fire", "alpha"],
        ["tick"],
        ["next", "every 1m"],
        ["history"],
        ["status"],
        ["providers"],
        ["gateway", "--no-webhook"],
        ["explain", "alpha"],
    ],
)
def test_unreadable_config_exits_2_and_writes_nothing(
    home: Path, problem: str, args: list[str]
) -> None:
    _job("alpha")
    write_config(home, CONFIG_PROBLEMS[problem])
    before = snapshot(home)
    r = cli(*args)
    lines = stderr_lines(r)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert len(lines) == 1, lines
    assert lines[0].startswith("cronkit: error: config error in ")
    assert lines[0].endswith(f"fix {home / 'config.yaml'}")
    assert snapshot(home) == before


def test_config_that_cannot_be_read(home: Path) -> None:
    (home / "config.yaml").mkdir(parents=True)
    r = cli("add", "every 1m", "--", "true")
    assert r.exit_code == 2
    (line,) = stderr_lines(r)
    assert "cannot read" in line
    # The config that would name the store is unreadable: no built-in store may appear.
    assert not any(p.exists() for p in builtin_store_files())


# executions.db is the JSON store's separate ledger; a SQLite store keeps its ledger
# in its own database, where damage is the store's error (StoreConfigError), not this line.
@pytest.mark.usefixtures("json_store")
def test_corrupt_ledger_is_one_line(home: Path) -> None:
    paths.cron_dir(create=True)
    paths.executions_path().write_bytes(b"this is not sqlite" * 100)
    before = snapshot(home)
    r = cli("history")
    assert r.exit_code == 2
    (line,) = stderr_lines(r)
    assert line.startswith(f"cronkit: error: run ledger {paths.executions_path()}: ")
    assert "move the file aside" in line
    assert snapshot(home) == before


def test_second_gateway_is_refused_with_the_live_pid(home: Path) -> None:
    _job("alpha")
    d = paths.cron_dir(create=True)
    (d / "gateway.pid").write_text(json.dumps({"pid": 4242, "hostname": hostname()}))
    fd = os.open(d / "gateway.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = snapshot(home)
        r = cli("gateway", "--no-webhook")
        assert r.exit_code == 2
        (line,) = stderr_lines(r)
        assert "already running" in line and "(pid 4242)" in line
        assert snapshot(home) == before
    finally:
        os.close(fd)


# -- formatting helpers ----------------------------------------------------------------------------


def test_overdue_next_run_is_flagged(home: Path) -> None:
    _due_job()
    r = cli("list")
    _assert_ok(r)
    assert re.search(rf"{TIME_RE} \((\d+s|1m \d+s) ago, overdue\)", r.stdout), r.stdout


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (4.4, "4s"),
        (59, "59s"),
        (60, "1m"),
        (250, "4m 10s"),
        (600, "10m"),
        (3599, "59m"),
        (3600, "1h"),
        (7500, "2h 5m"),
        (47 * 3600, "47h"),
        (2 * 86400, "2d"),
        (3 * 86400 + 4 * 3600 + 59, "3d 4h"),
    ],
)
def test_fmt_duration(seconds: float, text: str) -> None:
    from cron.cli._format import fmt_duration

    assert fmt_duration(seconds) == text
    assert fmt_duration(-seconds) == text


def test_fmt_time_and_relative() -> None:
    from zoneinfo import ZoneInfo

    from cron.cli._format import fmt_relative, fmt_time

    now = datetime(2026, 11, 25, 8, 56, tzinfo=UTC)
    at = "2026-11-25T08:00:00+00:00"
    berlin = ZoneInfo("Europe/Berlin")
    assert fmt_time(at, now=now, zone=berlin) == "2026-11-25 09:00:00 +01:00 (56m ago)"
    assert (
        fmt_time("2026-11-25T09:00:00+00:00", now=now, zone=ZoneInfo("America/St_Johns"))
        == "2026-11-25 05:30:00 -03:30 (in 4m)"
    )
    assert fmt_time(None) == "-" and fmt_time(None, empty="never") == "never"
    assert fmt_relative(now + timedelta(milliseconds=200), now) == "now"
    assert fmt_time(at, zone=berlin, relative=False) == "2026-11-25 09:00:00 +01:00"


def test_providers_reconcile_calls_the_selected_provider(home: Path) -> None:
    install_plugin(home, "fakerec", RECONCILE_COUNTING_PLUGIN)
    write_config(home, "cron:\n  provider: fakerec\n")
    r = cli("providers", "--reconcile")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == "reconciled provider fakerec: reconciled 1 time(s)"
    assert (home / "reconciled.txt").read_text() == "x"
    r = cli("providers", "--reconcile", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == {"reconciled": "fakerec", "detail": "reconciled 2 time(s)"}


def test_providers_reconcile_json_with_the_builtin(home: Path) -> None:
    r = cli("providers", "--reconcile", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == {"reconciled": "builtin", "detail": None}


RECONCILE_COUNTING_PLUGIN = """
import os
from pathlib import Path

from cron.scheduler_provider import CronScheduler


class FakeRec(CronScheduler):
    @property
    def name(self):
        return "fakerec"

    def start(self, stop_event, *, adapters=None, loop=None, interval=60):
        return None

    def reconcile(self):
        with open(Path(os.environ["CRONKIT_HOME"]) / "reconciled.txt", "a") as fh:
            fh.write("x")

    def status_detail(self):
        n = len((Path(os.environ["CRONKIT_HOME"]) / "reconciled.txt").read_text())
        return f"reconciled {n} time(s)"
"""
