"""The provider contract, applied to the crontab provider (real binary, throwaway crontab)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cron.plugins import load_cron_scheduler
from cron.providers.crontab import CrontabScheduler
from cron.scheduler_provider import CronScheduler
from cron.testing.provider import ProviderContract
from tests.integration.conftest import CrontabTarget

pytestmark = pytest.mark.integration


class TestCrontabProvider(ProviderContract):
    @pytest.fixture
    def provider(self, target: CrontabTarget, home: Path) -> CronScheduler:
        return target.provider()


def test_discovered_as_the_bundled_crontab_provider() -> None:
    found = load_cron_scheduler("crontab")
    assert isinstance(found, CrontabScheduler)
    assert found.name == "crontab"
    assert found.is_available() is True  # the binary is installed in this env
