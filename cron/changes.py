"""The change bus: how the data layer tells whoever listens that jobs changed.

``cron.jobs`` publishes after every successful mutation; the active trigger
provider (``set_active_provider``) and the CLI's configured-provider notifier
subscribe. The bus sits at the bottom of the import graph, so the store and
job API never import — or resolve — the trigger layer above them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Listener = Callable[[], None]


class ChangeBus:
    """Subscribers called, in order, after each published change. A failing one is
    logged and the rest still run: the change is already durable."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, fn: Listener) -> None:
        with self._lock:
            if fn not in self._listeners:
                self._listeners.append(fn)

    def unsubscribe(self, fn: Listener) -> None:
        with self._lock:
            if fn in self._listeners:
                self._listeners.remove(fn)

    def publish(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for fn in listeners:
            try:
                fn()
            except Exception:
                log.exception("jobs-changed listener %r failed", fn)


bus = ChangeBus()
"""This process's bus (one per process, like the store lock it mirrors)."""
