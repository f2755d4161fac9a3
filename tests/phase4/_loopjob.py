"""Python job targets for the runaway tests; run inside a real gateway process."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def spin(job: dict[str, Any]) -> str:
    """Loop until ``<home>/release`` exists: a callable that ignores its timeout."""
    home = Path(os.environ["CRONKIT_HOME"])
    with open(home / "starts", "a", encoding="utf-8") as fh:
        fh.write("start\n")
    while not (home / "release").exists():
        time.sleep(0.02)
    return "released"
