"""Phase 2: resolve_cron_scheduler reads cron.provider and always degrades to the built-in."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cron.scheduler_provider import InProcessCronScheduler, resolve_cron_scheduler
from tests.conftest import install_plugin, write_config

GOOD = """
    from cron.scheduler_provider import CronScheduler

    class Good(CronScheduler):
        @property
        def name(self):
            return "{name}"

        def start(self, stop_event, *, adapters=None, loop=None, interval=60):
            return None
"""


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("value", ["", "builtin", "in-process", "inprocess", "  builtin  "])
def test_builtin_aliases(home: Path, value: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    p = resolve_cron_scheduler({"cron": {"provider": value}})
    assert isinstance(p, InProcessCronScheduler)
    assert _warnings(caplog) == []


def test_default_config_is_builtin(home: Path) -> None:
    assert isinstance(resolve_cron_scheduler(), InProcessCronScheduler)


def test_named_user_plugin_is_selected(home: Path) -> None:
    install_plugin(home, "good", GOOD.format(name="good"))
    write_config(home, "cron:\n  provider: good\n")
    p = resolve_cron_scheduler()
    assert p.name == "good"
    assert not isinstance(p, InProcessCronScheduler)


FAILURES = {
    "not found": (None, "not found"),
    "import error": ("import no_such_module_cronkit_test\n", "failed to load (ModuleNotFoundError"),
    "raising constructor": (
        GOOD.replace(
            "class Good(CronScheduler):",
            "class Good(CronScheduler):\n        def __init__(self):\n"
            "            raise RuntimeError('boom in init')\n",
        ),
        "failed to load (RuntimeError: boom in init)",
    ),
    "raising is_available": (
        GOOD + "\n        def is_available(self):\n            raise OSError('probe broke')\n",
        "is_available() raised OSError: probe broke",
    ),
    "unavailable": (
        GOOD + "\n        def is_available(self):\n            return False\n",
        "is_available() returned False",
    ),
    "not a CronScheduler": (
        "def register(ctx):\n    ctx.register_cron_scheduler(object())\n",
        "is not a CronScheduler",
    ),
    "import raises SystemExit": ("raise SystemExit(3)\n", "failed to load (SystemExit"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_unusable_provider_degrades_with_one_warning(
    home: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    body, reason = FAILURES[case]
    name = "bad" + case.replace(" ", "").replace("_", "").lower()[:10]
    if body is not None:
        install_plugin(home, name, body.format(name=name) if "{name}" in body else body)
    write_config(home, f"cron:\n  provider: {name}\n")
    caplog.set_level(logging.WARNING)
    p = resolve_cron_scheduler()
    assert isinstance(p, InProcessCronScheduler)
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert repr(name) in warnings[0]
    assert reason in warnings[0]
    assert "built-in" in warnings[0]


@pytest.mark.parametrize(
    "text",
    [
        "cron:\n  provider: [unclosed\n",  # YAML syntax error
        "cron: 5\n",  # wrong type for the section
        "cron:\n  interval: soon\n",  # another key wrong: still no raise
        "cron:\n  provider: 42\n",
        "cron:\n  provider: [a, b]\n",
        "cron:\n  provider: {x: 1}\n",
        "cron:\n  provider: null\n",
    ],
)
def test_never_raises_whatever_the_config_holds(
    home: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    write_config(home, text)
    caplog.set_level(logging.WARNING)
    p = resolve_cron_scheduler()
    assert isinstance(p, InProcessCronScheduler)


def test_explicit_config_dict_wins_over_file(home: Path) -> None:
    write_config(home, "cron:\n  provider: nowhere\n")
    assert isinstance(resolve_cron_scheduler({"cron": {"provider": ""}}), InProcessCronScheduler)
