"""Where a job runs (SPEC §14): ``cwd`` and ``env`` job fields, python targets.

Real processes and files; time is passed in.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cron import executions, jobs, runners, scheduler
from cron.errors import ActionError, JobValueError
from cron.output import read_output
from cron.runners import RunContext

T0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
DUE = T0 + timedelta(minutes=1)
CTX = RunContext(timeout=10, scheduled_at="2026-06-01T10:01:00+00:00")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    d = tmp_path / "work dir"
    d.mkdir()
    return d


@pytest.fixture
def clean_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The python runner appends a job's cwd to sys.path: give each test its own copy,
    and forget the test module afterwards so no test imports another's from the cache."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    sys.modules.pop("ckwhere_mod", None)
    yield
    sys.modules.pop("ckwhere_mod", None)


def _only_row(job_id: str) -> dict[str, Any]:
    (row,) = executions.list_executions(job_id)
    return row


# -- the fields -----------------------------------------------------------------------------------


def test_cwd_and_env_are_stored_only_when_set(home: Path, workdir: Path) -> None:
    plain = jobs.create_job("every 1m", "true", now=T0)
    assert "cwd" not in plain and "env" not in plain
    job = jobs.create_job("every 1m", "true", cwd=str(workdir) + "/", env={"A_1": "x y"}, now=T0)
    stored = jobs.get_job(job["id"])
    assert stored is not None
    assert (stored["cwd"], stored["env"]) == (str(workdir), {"A_1": "x y"})
    # An empty map is "no env", not a stored {}.
    assert "env" not in jobs.create_job("every 1m", "true", env={}, now=T0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cwd": "relative/dir"}, "invalid cwd 'relative/dir': expected an absolute directory"),
        ({"cwd": "/no/such/dir/cronkit"}, "invalid cwd '/no/such/dir/cronkit': no such directory"),
        ({"cwd": 5}, "invalid cwd 5"),
        ({"env": ["A=b"]}, "invalid env ['A=b']: expected a map"),
        ({"env": {"1A": "x"}}, "invalid env '1A': not a valid environment variable name"),
        ({"env": {"A-B": "x"}}, "invalid env 'A-B'"),
        ({"env": {"": "x"}}, "invalid env ''"),
        ({"env": {"A": 1}}, "invalid env A 1: expected a string"),
        ({"env": {"A": "x\x00"}}, "invalid env A 'x\\x00'"),
        ({"env": {"CRONKIT_JOB_ID": "x"}}, "cannot be overridden"),
    ],
)
def test_bad_cwd_or_env_is_refused_and_writes_nothing(
    home: Path, kwargs: dict[str, Any], message: str
) -> None:
    job = jobs.create_job("every 1m", "true", now=T0)
    before = jobs.list_jobs()
    with pytest.raises(JobValueError) as info:
        jobs.create_job("every 1m", "true", now=T0, **kwargs)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)
    assert info.value.field.startswith(next(iter(kwargs)))
    with pytest.raises(JobValueError):
        jobs.update_job(job["id"], now=T0, **kwargs)
    assert jobs.list_jobs() == before


def test_a_file_is_not_a_directory(home: Path, tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(JobValueError, match="no such directory"):
        jobs.create_job("every 1m", "true", cwd=str(f), now=T0)


def test_env_is_for_command_jobs(home: Path) -> None:
    with pytest.raises(JobValueError, match="applies to command jobs only"):
        jobs.create_job(
            "every 1m", {"kind": "python", "target": "json:dumps"}, env={"A": "b"}, now=T0
        )
    job = jobs.create_job("every 1m", "true", env={"A": "b"}, now=T0)
    with pytest.raises(JobValueError, match="applies to command jobs only"):
        jobs.update_job(job["id"], action={"kind": "python", "target": "json:dumps"}, now=T0)
    assert jobs.get_job(job["id"]) == job
    # Clearing env in the same update makes the switch legal.
    moved = jobs.update_job(
        job["id"], action={"kind": "python", "target": "json:dumps"}, env=None, now=T0
    )
    assert moved["action"]["kind"] == "python" and "env" not in moved


def test_update_sets_and_removes_cwd_and_env(home: Path, workdir: Path) -> None:
    job = jobs.create_job("every 1m", "true", now=T0)
    changed = jobs.update_job(job["id"], cwd=str(workdir), env={"K": "v"}, now=T0)
    assert (changed["cwd"], changed["env"]) == (str(workdir), {"K": "v"})
    assert changed["next_run_at"] == job["next_run_at"]
    cleared = jobs.update_job(job["id"], cwd="", env={}, now=T0)
    assert "cwd" not in cleared and "env" not in cleared
    assert jobs.get_job(job["id"]) == cleared


# -- the command runs there -----------------------------------------------------------------------


def test_command_runs_in_cwd_with_env_over_the_inherited_one(
    home: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CK_INHERITED", "from-parent")
    monkeypatch.setenv("CK_OVERRIDDEN", "parent")
    job = jobs.create_job(
        "every 1m",
        'pwd; echo "$CK_INHERITED $CK_OVERRIDDEN $CK_NEW $CRONKIT_JOB_ID $CRONKIT_SCHEDULED_AT"',
        cwd=str(workdir),
        env={"CK_OVERRIDDEN": "job", "CK_NEW": "a b"},
        now=T0,
    )
    assert scheduler.tick(now=DUE, sync=True) == 1
    row = _only_row(job["id"])
    assert row["status"] == "ok", row
    assert read_output(row["output_path"]) == (
        f"{workdir}\nfrom-parent job a b {job['id']} {DUE.isoformat()}\n"
    )


def test_without_cwd_the_command_runs_in_the_home(home: Path) -> None:
    res = runners.run_action({"id": "x", "action": {"kind": "command", "command": "pwd"}}, CTX)
    assert (res.status, res.output) == ("ok", f"{home}\n")


def test_a_vanished_cwd_fails_the_run_naming_it(home: Path, workdir: Path) -> None:
    job = jobs.create_job("every 1m", "touch ran-here", cwd=str(workdir), now=T0)
    shutil.rmtree(workdir)
    assert scheduler.tick(now=DUE, sync=True) == 1
    row = _only_row(job["id"])
    assert row["status"] == "error"
    assert row["error"] == (
        f"cannot run in working directory {str(workdir)!r}: no such directory; "
        f"fix the job with 'cronkit edit {job['id']} --cwd DIR'"
    )
    assert f"[cronkit] error: cannot run in working directory {str(workdir)!r}" in read_output(
        row["output_path"]
    )
    stored = jobs.get_job(job["id"])
    assert stored is not None
    assert (stored["last_status"], stored["failure_streak"], stored["fire_claim"]) == (
        "error",
        1,
        None,
    )
    assert not (home / "ran-here").exists()


def test_a_cwd_that_became_a_file_fails_the_run(home: Path, workdir: Path) -> None:
    job = jobs.create_job("every 1m", "true", cwd=str(workdir), now=T0)
    workdir.rmdir()
    workdir.write_text("now a file")
    assert scheduler.tick(now=DUE, sync=True) == 1
    row = _only_row(job["id"])
    assert row["status"] == "error" and str(workdir) in row["error"]


# -- python targets -------------------------------------------------------------------------------

MODULE = """
    def no_args():
        return "called without the job"

    def with_job(job):
        return "got " + job["id"]

    def optional(job=None):
        return "optional got " + ("the job" if job else "nothing")

    def keyword_only(*, flag=True):
        return "keyword-only without the job"

    def star(*args):
        return "star got %d" % len(args)
"""


@pytest.mark.parametrize(
    ("func", "output"),
    [
        ("no_args", "called without the job"),
        ("with_job", "got py0000000000"),
        ("optional", "optional got the job"),
        ("keyword_only", "keyword-only without the job"),
        ("star", "star got 1"),
    ],
)
def test_python_target_gets_the_job_only_if_it_takes_a_positional_parameter(
    home: Path, workdir: Path, clean_imports: None, func: str, output: str
) -> None:
    (workdir / "ckwhere_mod.py").write_text(textwrap.dedent(MODULE))
    assert str(workdir) not in sys.path
    job = {
        "id": "py0000000000",
        "cwd": str(workdir),
        "action": {"kind": "python", "target": f"ckwhere_mod:{func}"},
    }
    for ctx in (CTX, RunContext(timeout=None, scheduled_at=None)):
        res = runners.run_action(job, ctx)
        assert (res.status, res.output, res.error) == ("ok", output, None)
    # Searched after the host's own paths, never before them.
    assert sys.path[-1] == str(workdir)


def test_python_target_in_cwd_runs_through_a_tick(
    home: Path, workdir: Path, clean_imports: None
) -> None:
    (workdir / "ckwhere_mod.py").write_text(textwrap.dedent(MODULE))
    job = jobs.create_job(
        "every 1m", {"kind": "python", "target": "ckwhere_mod:no_args"}, cwd=str(workdir), now=T0
    )
    assert scheduler.tick(now=DUE, sync=True) == 1
    row = _only_row(job["id"])
    assert row["status"] == "ok"
    assert read_output(row["output_path"]) == "called without the job"


def test_unimportable_target_is_added_with_a_warning(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cron.jobs")
    for target in (
        "no_such_module_for_cronkit:func",
        "tests.characterization.actions:no_such_function",
    ):
        caplog.clear()
        job = jobs.create_job("every 1h", {"kind": "python", "target": target}, now=T0)
        assert jobs.get_job(job["id"]) == job
        (record,) = caplog.records
        assert record.levelno == logging.WARNING
        assert f"job {job['id']}: cannot import python target {target!r} here" in (
            record.getMessage()
        )
        caplog.clear()
        jobs.update_job(job["id"], action={"kind": "python", "target": target}, now=T0)
        assert len(caplog.records) == 1
    caplog.clear()
    jobs.create_job("every 1h", {"kind": "python", "target": "json:dumps"}, now=T0)
    assert caplog.records == []


def test_malformed_target_is_still_refused(home: Path) -> None:
    with pytest.raises(ActionError, match="pkg.mod:func"):
        jobs.create_job("every 1h", {"kind": "python", "target": "nocolon"}, now=T0)
    assert jobs.list_jobs() == []


def test_import_check_searches_the_jobs_cwd_without_keeping_it(
    home: Path, workdir: Path, clean_imports: None, caplog: pytest.LogCaptureFixture
) -> None:
    (workdir / "ckwhere_mod.py").write_text(textwrap.dedent(MODULE))
    caplog.set_level(logging.WARNING, logger="cron.jobs")
    jobs.create_job(
        "every 1h", {"kind": "python", "target": "ckwhere_mod:no_args"}, cwd=str(workdir), now=T0
    )
    assert caplog.records == []
    assert str(workdir) not in sys.path
    assert os.getcwd() != str(workdir)
