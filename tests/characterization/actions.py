"""Deterministic ``python`` action targets for the characterization and tick tests.

Referenced as ``tests.characterization.actions:<name>``; ``tests`` is a package
importable from the repo root, which is also the import root of the test run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

OK = "tests.characterization.actions:ok"
FAIL = "tests.characterization.actions:fail"
BLOCK = "tests.characterization.actions:block_until_released"
INTERRUPT = "tests.characterization.actions:interrupt"

RELEASE_ENV = "CRONKIT_TEST_RELEASE_DIR"
"""Directory used by :func:`block_until_released` (set by the test)."""


def ok(job: dict[str, Any]) -> str:
    return "ok"


def fail(job: dict[str, Any]) -> str:
    raise RuntimeError("boom")


def interrupt(job: dict[str, Any]) -> str:
    raise KeyboardInterrupt("operator pressed ^C")


def block_until_released(job: dict[str, Any]) -> str:
    """Touch ``<dir>/started-<job id>``, then wait (bounded) for ``<dir>/release``."""
    directory = Path(os.environ[RELEASE_ENV])
    (directory / f"started-{job['id']}").touch()
    deadline = time.monotonic() + 20
    while not (directory / "release").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("never released")
        time.sleep(0.01)
    return "released"
