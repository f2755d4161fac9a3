"""Every test directory runs in some gate of plain ``tox``.

A directory that no env in ``env_list`` names is a suite CI never runs: it can rot
green. This reads ``tox.ini`` the way tox does (configparser) and checks that each
directory under ``tests/`` holding ``test_*.py`` files is named by the commands of an
env that plain ``tox`` runs.
"""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tox() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "tox.ini")
    return cfg


def _gated_paths() -> set[str]:
    cfg = _tox()
    envs = [e.strip() for e in cfg["tox"]["env_list"].split(",") if e.strip()]
    paths: set[str] = set()
    for env in envs:
        commands = cfg[f"testenv:{env}"].get("commands", cfg["testenv"]["commands"])
        for line in commands.splitlines():
            words = shlex.split(line)
            # Only pytest's own arguments name suites (``ruff check tests`` does not).
            if words and words[0] == "pytest":
                paths.update(w.rstrip("/") for w in words if w.startswith("tests/"))
    return paths


def test_every_test_directory_runs_in_a_plain_tox_gate() -> None:
    gated = _gated_paths()
    test_dirs = sorted(
        {p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("test_*.py")}
    )
    assert test_dirs, "no test files found under tests/"

    def covered(d: str) -> bool:
        return any(d == g or d.startswith(g + "/") for g in gated)

    missing = [d for d in test_dirs if not covered(d)]
    assert not missing, f"test directories no env in tox's env_list runs: {missing}"


def test_the_check_sees_the_gates() -> None:
    # Guards the check itself: if parsing broke, every directory would look uncovered
    # or (with an over-eager parser) covered; the phase-0 gate is a known fixed point.
    gated = _gated_paths()
    assert "tests/foundation" in gated and "tests/characterization" in gated
    assert "tests/support" not in gated and "tests" not in gated
