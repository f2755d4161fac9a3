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


def test_builtin_is_a_cron_scheduler_named_builtin() -> None:
    # The built-in ticker is phase 3's (cron.ticker); the phase-1 gate checks only the ABC.
    p = InProcessCronScheduler()
    assert isinstance(p, CronScheduler)
    assert p.name == "builtin"
    assert p.is_available() is True
