"""``add``/``edit`` say where a command runs (``--cwd``, ``--env``), as at(1) does.

The README's own example is run as written, from the folder of its script.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from cron import executions, jobs, scheduler
from cron.output import read_output
from tests.cli._helpers import REPO, cli, stderr_lines, subprocess_env


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    d = tmp_path / "my scripts"
    d.mkdir()
    return d


@pytest.fixture
def clean_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(sys, "path", list(sys.path))
    sys.modules.pop("ckwhere_cli_mod", None)
    yield
    sys.modules.pop("ckwhere_cli_mod", None)


def _cronkit_in(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m cron ARGS`` as a real process started in ``directory``."""
    return subprocess.run(
        [sys.executable, "-m", "cron", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=directory,
        timeout=60,
    )


def _readme_line(needle: str) -> list[str]:
    """The argv of the README line containing ``needle`` (comment dropped)."""
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        if needle in line and line.startswith("cronkit "):
            return shlex.split(line, comments=True)
    raise AssertionError(f"README.md has no 'cronkit ...' line containing {needle!r}")


def test_readme_standup_example_runs_its_script_from_where_it_was_added(
    home: Path, scripts: Path
) -> None:
    argv = _readme_line("--name standup")
    assert argv[:2] == ["cronkit", "add"] and argv[-1] == "./notify.sh"
    script = scripts / "notify.sh"
    script.write_text('#!/bin/sh\necho "standup reminder from $(pwd)"\n')
    script.chmod(0o755)

    r = _cronkit_in(scripts, *argv[1:])
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    (job,) = jobs.list_jobs()
    assert (job["name"], job["cwd"], job["action"]["command"]) == (
        "standup",
        str(scripts),
        "./notify.sh",
    )
    assert "env" not in job

    # Fired by a tick at its slot (09:00 Berlin on a weekday), from this process's cwd.
    assert Path.cwd() != scripts
    slot = datetime.fromisoformat(job["next_run_at"])
    assert scheduler.tick(now=slot, sync=True) == 1
    (row,) = executions.list_executions(job["id"])
    assert row["status"] == "ok", row
    assert read_output(row["output_path"]) == f"standup reminder from {scripts}\n"


def test_add_cwd_and_repeated_env(home: Path, scripts: Path) -> None:
    r = _cronkit_in(
        REPO,
        "add",
        "every 1h",
        "--cwd",
        str(scripts),
        "--env",
        "A=1",
        "--env",
        "B=x=y z",
        "--env",
        "EMPTY=",
        "--json",
        "--",
        'echo "$A|$B|$EMPTY|$(pwd)"',
    )
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)
    assert job["cwd"] == str(scripts)
    assert job["env"] == {"A": "1", "B": "x=y z", "EMPTY": ""}
    assert cli("run", job["id"]).exit_code == 0
    (row,) = executions.list_executions(job["id"])
    assert read_output(row["output_path"]) == f"1|x=y z||{scripts}\n"


def test_add_relative_cwd_is_made_absolute(home: Path, scripts: Path) -> None:
    r = _cronkit_in(
        scripts.parent, "add", "every 1h", "--cwd", scripts.name, "--json", "--", "true"
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["cwd"] == str(scripts)


def test_edit_cwd_env_and_clear_env(home: Path, scripts: Path, tmp_path: Path) -> None:
    job = jobs.create_job("every 1h", "true", name="alpha", env={"KEEP": "1", "OLD": "x"})
    r = cli("edit", "alpha", "--cwd", str(scripts), "--env", "OLD=y", "--env", "NEW=z", "--json")
    assert r.exit_code == 0, r.stderr
    edited = json.loads(r.stdout)
    assert (edited["cwd"], edited["env"]) == (str(scripts), {"KEEP": "1", "OLD": "y", "NEW": "z"})
    r = cli("edit", "alpha", "--clear-env", "--env", "ONLY=1", "--json")
    assert json.loads(r.stdout)["env"] == {"ONLY": "1"}
    r = cli("edit", "alpha", "--clear-env", "--cwd", "", "--json")
    cleared = json.loads(r.stdout)
    assert "env" not in cleared and "cwd" not in cleared
    assert jobs.get_job(job["id"]) == cleared
    shown = cli("show", "alpha").stdout
    assert re.search(rf"^cwd: +{re.escape(str(home))} \(the cronkit home\)$", shown, re.M)


def test_show_names_cwd_and_env(home: Path, scripts: Path) -> None:
    jobs.create_job("every 1h", "true", name="alpha", cwd=str(scripts), env={"K": "a b"})
    out = cli("show", "alpha").stdout
    assert re.search(rf"^cwd: +{re.escape(str(scripts))}$", out, re.M)
    assert re.search(r"^env: +K='a b'$", out, re.M)


def test_add_python_unimportable_warns_in_one_line_and_adds(home: Path, scripts: Path) -> None:
    r = _cronkit_in(scripts, "add", "every 1h", "--disabled", "--python", "no_such_mod_xyz:f")
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("cronkit: warning: job ")
    assert "cannot import python target 'no_such_mod_xyz:f' here" in lines[0]
    assert "ModuleNotFoundError" in lines[0]
    (job,) = jobs.list_jobs()
    assert job["action"] == {"kind": "python", "target": "no_such_mod_xyz:f"}
    assert job["cwd"] == str(scripts)


def test_edit_python_unimportable_warns(home: Path) -> None:
    jobs.create_job("every 1h", "true", name="alpha")
    r = cli("edit", "alpha", "--python", "no_such_mod_xyz:f")
    assert r.exit_code == 0, r.stderr
    lines = stderr_lines(r)
    assert len(lines) == 1 and "cannot import python target 'no_such_mod_xyz:f'" in lines[0]


def test_add_python_from_its_folder_imports_there_at_run_time(
    home: Path, scripts: Path, clean_imports: None
) -> None:
    (scripts / "ckwhere_cli_mod.py").write_text(
        textwrap.dedent("""
        import os

        def task():
            return "task ran, cwd on sys.path, pid " + str(os.getpid())
    """)
    )
    r = _cronkit_in(
        scripts, "add", "every 1h", "--name", "py", "--disabled", "--python", "ckwhere_cli_mod:task"
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert str(scripts) not in sys.path
    # Run here, in the test process, whose cwd and sys.path know nothing of the folder.
    ran = cli("run", "py")
    assert ran.exit_code == 0, (ran.stdout, ran.stderr)
    (job,) = jobs.list_jobs()
    (row,) = executions.list_executions(job["id"])
    assert read_output(row["output_path"]) == f"task ran, cwd on sys.path, pid {os.getpid()}"


def test_add_in_a_removed_directory_is_bad_input(home: Path, tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
            "from cron.cli import main; main(['add', 'every 1h', '--', 'true'])",
            str(gone),
        ],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "cronkit: error: the current directory no longer exists; cd elsewhere or give --cwd DIR"
    ]
    assert jobs.list_jobs() == []
