"""The provider contract, applied to the built-in ticker."""

from __future__ import annotations

from pathlib import Path

import pytest

from cron.scheduler_provider import CronScheduler, InProcessCronScheduler
from cron.testing.provider import ProviderContract


class TestBuiltinProvider(ProviderContract):
    @pytest.fixture
    def provider(self, home: Path) -> CronScheduler:
        return InProcessCronScheduler()
