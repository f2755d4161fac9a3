"""Axis B: who decides *when* a due job fires.

``CronScheduler`` is the provider ABC, ``InProcessCronScheduler`` the built-in
ticker, and ``resolve_cron_scheduler`` picks one from config, always degrading
to the built-in. What firing *means* stays in ``cron.scheduler`` and is shared
by every provider.

This module resolves a provider and embeds one (:func:`start_in_background`);
the ABC and the active-provider registry are in :mod:`cron.trigger`, the
built-in ticker in :mod:`cron.ticker`. Their names are importable from here.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from cron.config import cfg_get, load_config
from cron.ticker import RECOVER_EVERY, STANDBY_POLL, InProcessCronScheduler, TickerLock
from cron.trigger import BUILTIN_ALIASES, CronScheduler, active_provider, set_active_provider

__all__ = [
    "BUILTIN_ALIASES",
    "RECOVER_EVERY",
    "STANDBY_POLL",
    "BackgroundTicker",
    "CronScheduler",
    "InProcessCronScheduler",
    "TickerLock",
    "active_provider",
    "notify_jobs_changed",
    "resolve_cron_scheduler",
    "set_active_provider",
    "start_in_background",
]

log = logging.getLogger(__name__)


# -- selecting a provider ------------------------------------------------------


def notify_jobs_changed() -> None:
    """Tell the configured external provider that the store changed (the CLI's listener).

    A running provider (a gateway, an embedding host) hears changes through the
    bus already. The CLI has none, so it subscribes this: a configured external
    provider is resolved and told, so e.g. a crontab stays converged after
    ``cronkit add``. A host calling ``cron.jobs`` never resolves plugins.
    """
    provider = active_provider()
    if provider is not None:
        return  # subscribed to the bus itself
    if provider is None:
        try:
            name = str(cfg_get(load_config(), "cron", "provider", default="") or "")
        except Exception:
            return
        if name.strip().lower() in BUILTIN_ALIASES:
            return
        provider = resolve_cron_scheduler()
        if isinstance(provider, InProcessCronScheduler):
            return
    provider.on_jobs_changed()


def resolve_cron_scheduler(config: dict[str, Any] | None = None) -> CronScheduler:
    """The provider named by ``cron.provider`` — or the built-in. Never raises.

    Empty, ``builtin``, ``in-process`` or ``inprocess`` select the built-in. A
    named provider that is not found, fails to import, raises, or reports
    ``is_available() == False`` also yields the built-in, with one WARNING
    naming the provider and the reason: a bad plugin must never leave the
    host with no ticker at all.
    """
    try:
        cfg = config if config is not None else load_config()
        raw = cfg_get(cfg, "cron", "provider", default="")
    except BaseException as exc:  # noqa: B036 - "never raises" includes SystemExit from a hook
        if isinstance(exc, KeyboardInterrupt):
            raise
        log.warning("cron provider: config unreadable (%s); using the built-in ticker", exc)
        return InProcessCronScheduler()
    name = raw.strip() if isinstance(raw, str) else ("" if raw is None else str(raw))
    if name.lower() in BUILTIN_ALIASES:
        return InProcessCronScheduler()
    from cron.plugins import known_provider_names, load_cron_scheduler

    def fallback(reason: str) -> CronScheduler:
        log.warning(
            "cron provider %r unusable: %s; falling back to the built-in ticker", name, reason
        )
        return InProcessCronScheduler()

    try:
        provider = load_cron_scheduler(name)
    except BaseException as exc:  # noqa: B036
        if isinstance(exc, KeyboardInterrupt):
            raise
        return fallback(f"failed to load ({type(exc).__name__}: {exc})")
    if provider is None:
        try:
            known = ", ".join(known_provider_names()) or "none"
        except Exception:
            known = "unknown"
        return fallback(f"not found (discovered providers: {known})")
    try:
        available = provider.is_available()
    except BaseException as exc:  # noqa: B036
        if isinstance(exc, KeyboardInterrupt):
            raise
        return fallback(f"is_available() raised {type(exc).__name__}: {exc}")
    if not available:
        return fallback("is_available() returned False")
    return provider


# -- the embedding entry point -----------------------------------------------------


class BackgroundTicker:
    """Handle returned by :func:`start_in_background`."""

    def __init__(
        self, provider: CronScheduler, thread: threading.Thread, stop_event: threading.Event
    ) -> None:
        self.provider = provider
        self.thread = thread
        self.stop_event = stop_event

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    @property
    def standing_by(self) -> bool:
        """True while another ticker is active on this home and this one waits (built-in)."""
        return self.running and bool(getattr(self.provider, "standing_by", False))

    @property
    def active(self) -> bool:
        """True while this handle's trigger runs and is not standing by."""
        return self.running and bool(getattr(self.provider, "active", True))

    def stop(self, timeout: float | None = 10.0, *, wait_for_jobs: float | None = None) -> bool:
        """Stop the trigger; True if its thread ended within ``timeout``.

        ``wait_for_jobs`` additionally waits up to that many seconds for
        already-dispatched jobs to finish.
        """
        self.stop_event.set()
        try:
            self.provider.stop()
        except Exception:
            log.exception("provider %s: stop() failed", self.provider.name)
        self.thread.join(timeout)
        if wait_for_jobs:
            from cron.scheduler import wait_for_running

            wait_for_running(wait_for_jobs)
        return not self.thread.is_alive()


def start_in_background(
    *,
    adapters: Any = None,
    loop: asyncio.AbstractEventLoop | None = None,
    interval: float | None = None,
    config: dict[str, Any] | None = None,
    provider: CronScheduler | None = None,
) -> BackgroundTicker:
    """Embed cronkit: resolve the provider and run its ``start`` in a daemon thread.

    The same ``start`` the ``cronkit gateway`` process runs, so the ticker,
    its heartbeat and ``status`` behave identically in both. Where a ticker
    already runs on this home (a gateway, another worker process of the same
    host), the built-in stands by — ``handle.standing_by`` — and takes over
    within ``STANDBY_POLL`` seconds of that ticker's death; ``handle.stop()``
    then touches none of the active ticker's files.
    """
    cfg = config if config is not None else load_config()
    chosen = provider or resolve_cron_scheduler(cfg)
    every = float(
        interval if interval is not None else cfg_get(cfg, "cron", "interval", default=60)
    )
    stop_event = threading.Event()

    def run() -> None:
        set_active_provider(chosen)
        try:
            chosen.start(stop_event, adapters=adapters, loop=loop, interval=every)
        except BaseException:
            log.exception("cron provider %s: start() raised", chosen.name)
        finally:
            if active_provider() is chosen and stop_event.is_set():
                set_active_provider(None)

    thread = threading.Thread(target=run, name=f"cronkit-{chosen.name}", daemon=True)
    set_active_provider(chosen)
    thread.start()
    return BackgroundTicker(chosen, thread, stop_event)
