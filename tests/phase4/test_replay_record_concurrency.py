"""The webhook's replay record under concurrent writers (phase 4; its group commit is phase 0's).

Moved out of ``tests/foundation/test_groupcommit.py``: the phase-0 gate must not need
the webhook, so it runs without phase 4's modules.
"""

from __future__ import annotations

from pathlib import Path

from tests.foundation.test_groupcommit import _together


def test_concurrent_replays_of_one_signature_are_recorded_once(home: Path) -> None:
    from cron import webhook

    fresh = _together(12, lambda i: webhook.remember_signature("same", ttl=600, now=1000.0 + i))
    assert sum(1 for f in fresh if f) == 1
    distinct = _together(12, lambda i: webhook.remember_signature(f"d{i}", ttl=600, now=1000.0))
    assert distinct == [True] * 12
