"""Job changes reach listeners through ``cron.changes.bus``, never by resolving providers.

The data layer publishes; the active provider and the CLI subscribe. A host that
only calls ``cron.jobs`` must not import plugin code (or run ``crontab -l``) on
every mutation, and adding a listener must not silence the active provider.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cron import jobs, scheduler_provider
from cron.scheduler_provider import CronScheduler
from tests.cli._helpers import cli
from tests.conftest import install_plugin, write_config

MARKER_PLUGIN = """
from pathlib import Path
import os

Path(os.environ["CRONKIT_HOME"], "plugin-imported").write_text("yes")

from cron.scheduler_provider import CronScheduler


class Marker(CronScheduler):
    @property
    def name(self):
        return "marker"

    def start(self, stop_event, *, adapters=None, loop=None, interval=60):
        return None

    def on_jobs_changed(self):
        Path(os.environ["CRONKIT_HOME"], "told").write_text("yes")
"""


class _Recording(CronScheduler):
    def __init__(self) -> None:
        self.told = 0

    @property
    def name(self) -> str:
        return "recording"

    def start(
        self, stop_event: Any, *, adapters: Any = None, loop: Any = None, interval: float = 60
    ) -> None:
        return None

    def on_jobs_changed(self) -> None:
        self.told += 1


def test_a_host_changing_jobs_never_imports_the_configured_plugin(home: Path) -> None:
    install_plugin(home, "marker", MARKER_PLUGIN)
    write_config(home, "cron:\n  provider: marker\n")
    job = jobs.create_job("every 1h", "true")
    jobs.pause_job(job["id"])
    jobs.remove_job(job["id"])
    assert not (home / "plugin-imported").exists()


def test_the_cli_tells_the_configured_provider(home: Path) -> None:
    install_plugin(home, "marker", MARKER_PLUGIN)
    write_config(home, "cron:\n  provider: marker\n")
    assert cli("add", "every 1h", "--name", "a", "--", "true").exit_code == 0
    assert (home / "told").read_text() == "yes"


def test_a_listener_does_not_silence_the_active_provider(home: Path) -> None:
    provider = _Recording()
    heard: list[int] = []

    def listener() -> None:
        heard.append(1)

    scheduler_provider.set_active_provider(provider)
    jobs.add_change_listener(listener)
    try:
        jobs.create_job("every 1h", "true")
    finally:
        scheduler_provider.set_active_provider(None)
        jobs.remove_change_listener(listener)
    assert provider.told == 1
    assert heard == [1]
    jobs.create_job("every 1h", "true")
    assert provider.told == 1  # no longer active: no longer told
