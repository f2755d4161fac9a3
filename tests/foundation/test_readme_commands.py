"""The README opens with the two set-up commands, and CI runs the second one verbatim."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _opening_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block is not None and text.index(block.group(0)) < text.index("\n## "), (
        "the README must open with a sh block"
    )
    lines = [ln.split("#", 1)[0].strip() for ln in block.group(1).splitlines()]
    return [ln for ln in lines if ln]


def test_readme_opens_with_exactly_two_commands() -> None:
    run, test = _opening_commands()
    assert run.endswith("cronkit gateway")
    assert test.endswith("tox")


def test_ci_runs_the_readme_test_command() -> None:
    _, test = _opening_commands()
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert test in ci.splitlines()


def test_no_tracked_file_is_in_the_way_of_the_venv() -> None:
    """Both commands create ``.venv`` in the checkout; a tracked *file* of that name
    (tools have written one here before) makes them fail on a fresh clone."""
    import subprocess

    tracked = subprocess.run(
        ["git", "ls-files", "--", ".venv", ".tox"], cwd=REPO, capture_output=True, text=True
    )
    assert tracked.returncode == 0, tracked.stderr
    assert tracked.stdout.split() == []
