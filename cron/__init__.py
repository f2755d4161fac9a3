"""cronkit: an embeddable cron subsystem that fires exactly when due, never twice.

Embedding::

    import cron
    handle = cron.start_in_background()   # same ticker as `cronkit gateway`
    ...
    handle.stop()
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def start_in_background(**kwargs: Any) -> Any:
    """See :func:`cron.scheduler_provider.start_in_background`."""
    from cron.scheduler_provider import start_in_background as _start

    return _start(**kwargs)


__all__ = ["__version__", "start_in_background"]
