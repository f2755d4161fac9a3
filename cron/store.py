"""The configured job store: ``get_store()`` / ``set_store()`` (SPEC §10).

``cron.store`` in the config (or ``$CRONKIT_STORE``, which wins) names the
store as a URL; see :mod:`cron.stores` for the seam and the URL table. The
store is resolved per call — ``CRONKIT_HOME`` and the config may change
between calls — and opened stores are kept per (home, URL) so their caches and
connections live as long as the process. :func:`bound_store` installs a store
for one context only (a ``cron.runtime.Runtime`` given its own store).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Iterator

from cron import paths
from cron.claim import Job
from cron.config import cfg_get, read_config
from cron.stores import JobStore, Stored, Swap, open_store
from cron.stores._jsoncache import due_index
from cron.stores.json import JsonJobStore

__all__ = [
    "Job",
    "JobStore",
    "JsonJobStore",
    "Stored",
    "Swap",
    "bound_store",
    "configured_url",
    "due_index",
    "get_store",
    "set_store",
]

STORE_ENV = "CRONKIT_STORE"


class _Stores:
    """The stores this process opened, and the one installed by :func:`set_store`."""

    def __init__(self) -> None:
        self.installed: JobStore | None = None
        self.opened: dict[tuple[str, str], JobStore] = {}
        self.lock = threading.Lock()


_stores = _Stores()
_BOUND: contextvars.ContextVar[JobStore | None] = contextvars.ContextVar(
    "cronkit_store", default=None
)


def configured_url() -> str:
    """The store URL in force: ``$CRONKIT_STORE``, else ``cron.store``, else ``""`` (json)."""
    env = os.environ.get(STORE_ENV)
    if env is not None and env.strip():
        return env.strip()
    return str(cfg_get(read_config(), "cron", "store", default="") or "").strip()


def get_store() -> JobStore:
    """The store in force for this process (installed, else configured).

    Raises :class:`cron.errors.StoreConfigError` for a URL that cannot be
    opened — never a silent fallback to ``jobs.json``.
    """
    installed = _BOUND.get() or _stores.installed
    if installed is not None:
        return installed
    url = configured_url()
    key = (str(paths.home()), url)
    store = _stores.opened.get(key)
    if store is None:
        with _stores.lock:
            store = _stores.opened.get(key)
            if store is None:
                store = open_store(url)
                _stores.opened[key] = store
    return store


@contextlib.contextmanager
def bound_store(store: JobStore) -> Iterator[None]:
    """:func:`get_store` returns ``store`` in this context (thread) for the block."""
    token = _BOUND.set(store)
    try:
        yield
    finally:
        _BOUND.reset(token)


def set_store(store: JobStore | None) -> None:
    """Install ``store`` for this process; ``None`` restores the configured one,
    opened afresh (what a restarted process would see)."""
    _stores.installed = store
    if store is None:
        with _stores.lock:
            opened, _stores.opened = _stores.opened, {}
        for old in opened.values():
            old.close()
