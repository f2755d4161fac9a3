"""Python job targets for property tests: no process to start, so a tick costs little."""

from __future__ import annotations


def noop(job: object = None) -> None:
    return None
