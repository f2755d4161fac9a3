"""The README quickstart, run as written, in a temp CRONKIT_HOME.

The block is the fenced ``sh`` block right after the marker line
``<!-- quickstart: tested by tests/cli/test_readme_quickstart.py -->`` in
README.md; at the time of writing it reads::

    cronkit add "every 2s" --name hello -- echo "hello from cronkit"
    cronkit gateway        # runs in the foreground; Ctrl-C stops it
    cronkit history hello
    cronkit status

Each ``cronkit ...`` line runs as ``python -m cron ...`` (shlex-split,
comments dropped). ``cronkit gateway`` is started, left running for ~6 s,
then interrupted (SIGINT, i.e. Ctrl-C) and must exit 0. The only setup beyond
the temp home is a free webhook port in config.yaml, so the test never
collides with a gateway already listening on the default port.
"""

from __future__ import annotations

import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cron import executions, jobs, paths
from tests.cli._helpers import REPO, cronkit, subprocess_env
from tests.conftest import write_config

pytestmark = pytest.mark.slow

MARKER = "<!-- quickstart: tested by tests/cli/test_readme_quickstart.py -->"
GATEWAY_SECONDS = 6.0


def quickstart_commands(readme: str) -> list[list[str]]:
    """The argv of every command in the fenced sh block after the marker."""
    lines = readme.splitlines()
    if MARKER not in [line.strip() for line in lines]:
        raise AssertionError(f"README.md has no line {MARKER!r}")
    i = [line.strip() for line in lines].index(MARKER) + 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or lines[i].strip() != "```sh":
        raise AssertionError("the quickstart marker must be followed by a ```sh block")
    commands: list[list[str]] = []
    for line in lines[i + 1 :]:
        if line.strip().startswith("```"):
            return commands
        argv = shlex.split(line, comments=True)
        if argv:
            commands.append(argv)
    raise AssertionError("the quickstart block is not closed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_block_extraction() -> None:
    text = (
        f"intro\n{MARKER}\n```sh\ncronkit add 'every 2s' -- echo \"a b\"  # note\n\n"
        "# a comment\ncronkit status\n```\n```sh\ncronkit other\n```\n"
    )
    assert quickstart_commands(text) == [
        ["cronkit", "add", "every 2s", "--", "echo", "a b"],
        ["cronkit", "status"],
    ]
    with pytest.raises(AssertionError, match="no line"):
        quickstart_commands("```sh\ncronkit status\n```\n")


def test_readme_quickstart_as_written(home: Path, tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = quickstart_commands(readme)
    assert commands, "the quickstart block is empty"
    write_config(home, f"cron:\n  webhook:\n    port: {_free_port()}\n")

    results: dict[str, subprocess.CompletedProcess[str]] = {}
    for argv in commands:
        assert argv[0] == "cronkit", f"quickstart line does not start with cronkit: {argv}"
        if argv[1:2] == ["gateway"]:
            log = tmp_path / "gateway.log"
            with log.open("wb") as out:
                gw = subprocess.Popen(
                    [sys.executable, "-m", "cron", *argv[1:]],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=subprocess_env(),
                    cwd=REPO,
                )
            try:
                time.sleep(GATEWAY_SECONDS)
                assert gw.poll() is None, log.read_text()
                gw.send_signal(signal.SIGINT)  # Ctrl-C
                assert gw.wait(timeout=40) == 0, log.read_text()
            finally:
                if gw.poll() is None:
                    gw.kill()
                    gw.wait()
            continue
        r = cronkit(*argv[1:])
        assert "Traceback" not in r.stderr, r.stderr
        results[argv[1]] = r
        if argv[1] != "status":
            assert r.returncode == 0, (argv, r.stdout, r.stderr)

    (job,) = jobs.list_jobs()
    assert job["name"] == "hello"
    outputs = sorted(paths.output_dir(job["id"]).glob("*.log"))
    assert outputs, "the job never wrote an output file"
    assert outputs[-1].read_text() == "hello from cronkit\n"
    rows = executions.list_executions(job["id"])
    assert rows and all(row["status"] == "ok" and row["source"] == "tick" for row in rows)
    # ~6 s of "every 2s": a couple of runs, never a burst.
    assert 1 <= len(rows) <= 5

    history = results["history"].stdout.splitlines()
    assert history[0].split()[:3] == ["WHEN", "JOB", "STATUS"]
    assert any(" hello " in line and " ok " in line for line in history[1:])
    # After Ctrl-C nothing ticks: status says so (exit 2), it does not pretend.
    status = results["status"]
    assert status.returncode == 2
    assert status.stdout.startswith("✗ ticker stopped")
