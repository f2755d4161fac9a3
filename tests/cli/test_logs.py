"""``cronkit logs ID [-f] [--run RUN]`` and the output column of ``history``.

The follow tests use real processes: ``cronkit run`` runs a command that
prints, waits, prints again, while ``cronkit logs -f`` follows it.
"""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cron import executions, jobs, scheduler
from cron.output import read_output
from tests.cli._helpers import REPO, cli, stderr_lines, subprocess_env, wait_until

T0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)


def _default_sigint() -> None:
    # A shell without job control starts background commands with SIGINT ignored, and
    # Python installs its KeyboardInterrupt handler only over the default disposition:
    # the child gets the Ctrl-C a terminal would give it, however the suite was started.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cron", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        cwd=REPO,
        preexec_fn=_default_sigint,
    )


def _running_row(job_id: str) -> dict[str, object] | None:
    for row in executions.list_executions(job_id) if executions_exist() else []:
        if row["status"] == "running" and row["output_path"]:
            return row
    return None


def executions_exist() -> bool:
    from cron.store import get_store

    return get_store().ledger().exists()


def _ran(job_id: str, at: datetime) -> dict[str, object]:
    assert scheduler.tick(now=at, sync=True) == 1
    return executions.list_executions(job_id)[0]


def test_logs_prints_the_newest_run_or_the_one_asked_for(home: Path) -> None:
    job = jobs.create_job("every 1m", 'echo "run at $CRONKIT_SCHEDULED_AT"', name="alpha", now=T0)
    first = _ran(job["id"], T0 + timedelta(minutes=1))
    second = _ran(job["id"], T0 + timedelta(minutes=2))
    r = cli("logs", "alpha")
    assert (r.exit_code, r.stderr) == (0, "")
    assert r.stdout == read_output(str(second["output_path"]))
    assert r.stdout == f"run at {(T0 + timedelta(minutes=2)).isoformat()}\n"
    r = cli("logs", job["id"], "--run", str(first["id"])[:10])
    assert r.stdout == f"run at {(T0 + timedelta(minutes=1)).isoformat()}\n"
    # A finished run with -f: printed, then done at once.
    started = time.monotonic()
    r = cli("logs", "alpha", "-f")
    assert r.exit_code == 0 and r.stdout.startswith("run at ")
    assert time.monotonic() - started < 2


def test_logs_skips_slots_that_never_ran(home: Path) -> None:
    job = jobs.create_job("every 1m", "echo ran", name="alpha", now=T0)
    _ran(job["id"], T0 + timedelta(minutes=1))
    executions.record_event(job["id"], status="skipped", scheduled_at=T0, source="tick")
    assert cli("logs", "alpha").stdout == "ran\n"


def test_logs_without_a_run_is_one_line_exit_1(home: Path) -> None:
    jobs.create_job("every 1m", "true", name="alpha", now=T0)
    r = cli("logs", "alpha")
    assert r.exit_code == 1
    assert stderr_lines(r) == [
        f"cronkit: error: job {jobs.list_jobs()[0]['id']} has no run with output yet"
    ]
    assert r.stdout == ""


def test_logs_of_a_pruned_file_is_one_line_exit_1(home: Path) -> None:
    job = jobs.create_job("every 1m", "echo x", name="alpha", now=T0)
    row = _ran(job["id"], T0 + timedelta(minutes=1))
    Path(str(row["output_path"])).unlink()
    r = cli("logs", "alpha")
    assert r.exit_code == 1
    (line,) = stderr_lines(r)
    assert line.startswith(f"cronkit: error: the output file of run {row['id']} is gone: ")


def test_logs_ambiguous_run_prefix_is_bad_input(home: Path) -> None:
    job = jobs.create_job("every 1m", "true", name="alpha", now=T0)
    for token in ("ab01" + "0" * 28, "ab02" + "0" * 28):
        executions.mark_running(token, job_id=job["id"], output_path=home / f"{token}.log")
    r = cli("logs", "alpha", "--run", "ab0")
    assert r.exit_code == 2
    assert stderr_lines(r) == [
        f"cronkit: error: run 'ab0' matches 2 runs of job {job['id']}; give more of its id"
    ]


def test_logs_of_a_removed_job_reads_the_ledger(home: Path) -> None:
    job = jobs.create_job("every 1m", "echo still here", now=T0)
    _ran(job["id"], T0 + timedelta(minutes=1))
    assert jobs.remove_job(job["id"])
    assert cli("logs", job["id"]).stdout == "still here\n"


def test_logs_follow_prints_both_lines_and_exits_when_the_run_ends(
    home: Path, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    job = jobs.create_job(
        "every 1h",
        f"echo first line; while [ ! -e '{release}' ]; do sleep 0.05; done; echo second line",
        name="slow",
    )
    run = _spawn("run", "slow")
    follow: subprocess.Popen[str] | None = None
    try:
        wait_until(lambda: _running_row(job["id"]) is not None, 30, "the run to start")
        row = _running_row(job["id"])
        assert row is not None
        path = Path(str(row["output_path"]))
        # The first line is in the file while the run is still going.
        wait_until(lambda: read_output(path) == "first line\n", 10, "the first line")
        follow = _spawn("logs", "slow", "-f")
        time.sleep(0.5)
        assert follow.poll() is None, follow.communicate()  # still following
        release.touch()
        out, err = follow.communicate(timeout=30)
        assert (follow.returncode, err) == (0, "")
        assert out == "first line\nsecond line\n"
        assert run.wait(timeout=30) == 0
        final = executions.get_execution(str(row["id"]))
        assert final is not None and final["status"] == "ok"
    finally:
        release.touch()
        for proc in (run, follow):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_logs_follow_stops_cleanly_on_ctrl_c(home: Path, tmp_path: Path) -> None:
    release = tmp_path / "release"
    job = jobs.create_job(
        "every 1h",
        f"echo working; while [ ! -e '{release}' ]; do sleep 0.05; done",
        name="slow",
    )
    run = _spawn("run", "slow")
    follow: subprocess.Popen[str] | None = None
    try:
        wait_until(lambda: _running_row(job["id"]) is not None, 30, "the run to start")
        follow = _spawn("logs", "slow", "-f")
        # Interrupt only once it is following (it printed the output so far): a
        # fixed sleep raced the interpreter's start-up on a loaded machine.
        assert follow.stdout is not None
        ready, _, _ = select.select([follow.stdout], [], [], 30)
        assert ready, "logs -f printed nothing within 30 s"
        first = follow.stdout.readline()
        assert first == "working\n"
        assert follow.poll() is None
        follow.send_signal(signal.SIGINT)
        out, err = follow.communicate(timeout=30)
        assert follow.returncode == 130
        assert first + out == "working\n"
        assert err.splitlines() == ["cronkit: interrupted"]
        # Following never touched the run.
        assert run.poll() is None
    finally:
        release.touch()
        assert run.wait(timeout=30) == 0
        if follow is not None and follow.poll() is None:
            follow.kill()
            follow.wait()


def test_history_shows_the_output_path_of_a_failed_run(home: Path) -> None:
    job = jobs.create_job("every 1m", "echo partial; exit 127", name="broken", now=T0)
    row = _ran(job["id"], T0 + timedelta(minutes=1))
    lines = cli("history", "broken").stdout.splitlines()
    assert lines[0].split() == [
        "WHEN",
        "JOB",
        "STATUS",
        "SOURCE",
        "TOOK",
        "SLOT",
        "ATTEMPT",
        "OUTPUT",
        "ERROR",
    ]
    assert str(row["output_path"]) in lines[1]
    assert lines[1].endswith(" exit status 127")


def test_history_shows_the_output_path_of_a_running_run(home: Path, tmp_path: Path) -> None:
    release = tmp_path / "release"
    job = jobs.create_job(
        "every 1h",
        f"while [ ! -e '{release}' ]; do sleep 0.05; done",
        name="slow",
    )
    run = _spawn("run", "slow")
    try:
        wait_until(lambda: _running_row(job["id"]) is not None, 30, "the run to start")
        row = _running_row(job["id"])
        assert row is not None
        r = cli("history", "slow")
        (line,) = [x for x in r.stdout.splitlines()[1:] if " running " in x]
        assert str(row["output_path"]) in line
    finally:
        release.touch()
        assert run.wait(timeout=30) == 0
