"""Golden files for the Phase 0 characterization suite.

``golden.check(name, data)`` compares ``data`` (anything JSON-able) with the
committed file ``tests/characterization/golden/<name>.json``:

* the golden exists → ``data`` must equal it exactly (a diff is shown);
* the golden is missing → the test FAILS: a missing snapshot is never a pass;
* ``CRONKIT_UPDATE_GOLDENS=1`` in the environment → the golden is (re)written
  from ``data``; the test passes only if the file was written and reads back
  equal. This is the one explicit way to regenerate::

      CRONKIT_UPDATE_GOLDENS=1 python3 -m pytest tests/characterization -p no:cacheprovider

  then review the diff (``git diff tests/characterization/golden``) against
  SPEC.md before committing it.

An environment variable rather than a ``--update-goldens`` option: pytest only
reads ``pytest_addoption`` from the root conftest or plugins, and this
directory must stay self-contained.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
UPDATE_ENV = "CRONKIT_UPDATE_GOLDENS"


def updating() -> bool:
    return os.environ.get(UPDATE_ENV, "").strip() not in ("", "0", "false", "no")


def _canonical(data: Any) -> Any:
    """``data`` as it reads back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(data, sort_keys=True))


def _dump(data: Any) -> str:
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


class Golden:
    def __init__(self, directory: Path = GOLDEN_DIR) -> None:
        self.directory = directory

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def check(self, name: str, data: Any) -> None:
        path = self.path(name)
        actual = _canonical(data)
        if updating():
            self.directory.mkdir(parents=True, exist_ok=True)
            path.write_text(_dump(actual), encoding="utf-8")
            written = json.loads(path.read_text(encoding="utf-8"))
            assert written == actual, f"golden {path} did not read back as written"
            return
        if not path.exists():
            pytest.fail(
                f"golden file {path} is missing; generate it with {UPDATE_ENV}=1 "
                "python3 -m pytest tests/characterization, then review it against SPEC.md",
                pytrace=False,
            )
        expected = json.loads(path.read_text(encoding="utf-8"))
        assert actual == expected, (
            f"behaviour differs from golden {path.name}; if the change is intended, "
            f"regenerate with {UPDATE_ENV}=1 and review the diff"
        )


@pytest.fixture
def golden() -> Golden:
    return Golden()
