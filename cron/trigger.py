"""The trigger axis' abstract surface: ``CronScheduler`` (SPEC §6), and which provider
this process tells about job changes (:func:`set_active_provider`).

A leaf module but for the change bus — providers (bundled, entry points, user
plugins), the built-in ticker (:mod:`cron.ticker`) and the plugin discovery
import it without importing the built-in ticker or its resolver;
``cron.scheduler_provider`` re-exports its names under the SPEC's name.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any

from cron import changes

BUILTIN_ALIASES = frozenset({"", "builtin", "in-process", "inprocess"})


class CronScheduler(ABC):
    """A trigger provider. **Experimental**: its shape is proven by two providers.

    Required (abstract — exactly these two, forever):
        ``name`` — a short identifier, matching ``cron.provider`` in config.
        ``start(stop_event, *, adapters=None, loop=None, interval=60)`` — begin
        triggering. A provider that loops (the built-in) returns only once
        ``stop_event`` is set; one that delegates to an outside scheduler may
        set that up and return at once.

    Optional (working defaults; override any of them):
        ``is_available()`` — can this provider work here? Must be cheap and
        make **no network call**: it runs on every resolve. Default True.
        ``stop()`` — release resources. Default: nothing to do.
        ``on_jobs_changed()`` — the store changed in this process (called after
        every successful create/update/remove/pause/resume). Default: nothing.
        ``reconcile()`` — converge external state toward the store. Default:
        nothing.
        ``fire_due(job_id, ...)`` — fire one job the way an external trigger
        does: claim → re-read → ``run_one_job``.

    Growth must stay additive: a new hook gets a safe default, never a new
    abstract method, so every provider written against today's ABC keeps
    working. ``test_abc_growth_stays_additive`` fails if the abstract set ever
    differs from ``{name, start}``.
    """

    @property
    @abstractmethod
    def name(self) -> str: ...

    @abstractmethod
    def start(
        self,
        stop_event: threading.Event,
        *,
        adapters: Any = None,
        loop: asyncio.AbstractEventLoop | None = None,
        interval: float = 60,
    ) -> None: ...

    def is_available(self) -> bool:
        return True

    def stop(self) -> None:
        return None

    def on_jobs_changed(self) -> None:
        return None

    def reconcile(self) -> None:
        return None

    def fire_due(
        self,
        job_id: str,
        *,
        adapters: Any = None,
        loop: asyncio.AbstractEventLoop | None = None,
        scheduled_at: datetime | str | None = None,
        now: datetime | None = None,
        force: bool = False,
    ) -> bool:
        """Claim ``job_id`` for ``scheduled_at`` and run it; True only if this call ran it.

        Claim through the store's compare-and-set (a lost claim → False, no
        run) → re-read the job (removed meanwhile → False) → ``run_one_job``.
        The ledger row's ``source`` is this provider's ``name``.
        """
        from cron import scheduler

        fired = scheduler.fire_job(
            job_id, scheduled_at=scheduled_at, now=now, force=force, source=self.name
        )
        if fired.job is None:
            return False
        job = fired.job
        # True means 'this caller claimed and ran it', whatever the run's outcome.
        scheduler.run_one_job(job, adapters=adapters, loop=loop)
        return True


# -- the active provider -------------------------------------------------------

_active: CronScheduler | None = None
_active_lock = threading.Lock()


def set_active_provider(provider: CronScheduler | None) -> None:
    """Make ``provider`` the one this process's job changes are told about (``on_jobs_changed``)."""
    global _active
    with _active_lock:
        if _active is not None:
            changes.bus.unsubscribe(_active.on_jobs_changed)
        _active = provider
        if provider is not None:
            changes.bus.subscribe(provider.on_jobs_changed)


def active_provider() -> CronScheduler | None:
    return _active


__all__ = ["BUILTIN_ALIASES", "CronScheduler", "active_provider", "set_active_provider"]
