"""Each phase gate's test directories import only what their phase has (PLAN.md).

``tox -e phase0`` must be able to pass on a code base that has only phase 0 — the
store, schedules, ledger, runners and the tick — or it is not the gate a port
starts from. So a test file of a phase may not import (at module level or inside a
test) a module a *later* phase adds. Read with :mod:`ast`; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]

# The modules each phase (or the ops gate, SPEC §13-14) adds; a prefix covers a package.
ADDED_BY = {
    1: ("cron.trigger",),
    2: ("cron.scheduler_provider", "cron.plugins", "cron.providers"),
    3: ("cron.ticker", "cron.status", "cron.registry", "cron.testing.provider"),
    4: (
        "cron.webhook",
        "cron.webhook_auth",
        "cron.webhook_client",
        "cron.gateway",
        "cron.cli",
        "cron.explain",
        "cron.metrics",
        "cron.service",
        "tests.cli",
        "tests.phase4",
    ),
    "ops": (
        "cron.audit",
        "cron.audit_verdict",
        "cron.audit_ledger",
        "cron.retry",
        "tests.retries",
        "tests.declared",
        "tests.audit",
    ),
}

# A gate's directories, and the phases that come after it.
LATER = {
    "foundation": (1, 2, 3, 4, "ops"),
    "characterization": (1, 2, 3, 4, "ops"),
    "phase1": (2, 3, 4, "ops"),
    "phase2": (3, 4, "ops"),
    "phase3": (4, "ops"),
    "contract": (4, "ops"),
}


def _imported(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            # ``from cron import webhook`` imports the module cron.webhook.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _later_imports(path: Path, later: tuple[int | str, ...]) -> list[str]:
    bad = []
    for name in sorted(_imported(path)):
        for phase in later:
            if any(name == m or name.startswith(m + ".") for m in ADDED_BY[phase]):
                bad.append(f"{name} (phase {phase})")
    return bad


@pytest.mark.parametrize("directory", sorted(LATER))
def test_a_gate_imports_nothing_a_later_phase_adds(directory: str) -> None:
    files = sorted((TESTS / directory).rglob("*.py"))
    assert files, f"tests/{directory} has no files: is the table above out of date?"
    bad = [
        f"{f.relative_to(TESTS.parent)} imports {what}"
        for f in files
        for what in _later_imports(f, LATER[directory])
    ]
    assert not bad, "\n".join(bad)


def test_the_check_sees_function_local_and_from_imports(tmp_path: Path) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "from cron import jobs\nimport cron.store\n\ndef test_x():\n    from cron import webhook\n",
        encoding="utf-8",
    )
    assert _later_imports(probe, LATER["foundation"]) == ["cron.webhook (phase 4)"]
    assert _later_imports(probe, ()) == []
