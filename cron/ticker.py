"""The built-in ticker (SPEC §6): ``InProcessCronScheduler`` and the ``TickerLock``.

A loop in the host process that survives any exception, writes the heartbeat
status reads, and is the one active ticker per home (the others stand by).
What a tick *does* is :mod:`cron.scheduler`'s; choosing a provider and
embedding one are :mod:`cron.scheduler_provider`'s, which re-exports these names.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cron import heartbeat, paths
from cron.runtime import Runtime, default_runtime
from cron.trigger import CronScheduler, set_active_provider

if TYPE_CHECKING:
    from datetime import datetime

    from cron.registry import Registration
    from cron.stores import JobStore

# Logged under the provider module's name: the gateway's log lines, and the
# operators' filters, name it.
log = logging.getLogger("cron.scheduler_provider")


def _store_or_none() -> JobStore | None:
    from cron.store import get_store

    try:
        return get_store()
    except Exception:
        log.exception("the job store cannot be opened; the ticker keeps trying")
        return None


# -- the built-in ticker --------------------------------------------------------

TickFn = Callable[..., int]
WaitFn = Callable[[threading.Event, float], None]


STANDBY_POLL = 0.5
"""How often a standing-by ticker tries the ticker lock (seconds): it takes over
within this (plus its start-up) of the active ticker's death."""

BEAT_FLUSH = 5.0
"""Seconds a stopping ticker waits for its last heartbeat to be written."""

PREFETCH_LEAD = 0.02
"""Seconds before a due job's wake-up at which the ticker reads the jobs due then."""

STARTS_WAIT = 0.1
"""How long, at most, the ticker lets the starts it dispatched go before its heartbeat."""

RECOVER_EVERY = 60.0
"""How often, at most, the active ticker looks for runs whose owner died (seconds); more
often when ``claim_ttl`` is short (:func:`recover_every`), so a dead node's run is settled
soon after its claim goes stale."""


def recover_every(claim_ttl: float) -> float:
    """Seconds between recovery passes: a third of ``claim_ttl`` (1 s to :data:`RECOVER_EVERY`).

    A run whose owner is on another host is settled only once its claim is stale
    (``claim_ttl``); passing every ``claim_ttl / 3`` settles it within a third of a TTL
    after that. A pass is cheap: one indexed read of the live ledger rows.
    """
    return min(RECOVER_EVERY, max(1.0, float(claim_ttl) / 3))


class TickerLock:
    """``<home>/cron/ticker.lock``: one active ticker per home, held for the ticker's life.

    An exclusive ``flock`` on an open file description: the kernel releases it
    when its holder dies however it dies (``kill -9`` included), so a standby
    can take over with no stale state to judge. Two tickers in one process
    conflict too (each opens its own description). The descriptor is not
    inherited by job processes, so an orphaned job never holds it.
    """

    def __init__(self) -> None:
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock without blocking; False while another ticker holds it."""
        if self._fd is not None:
            return True
        paths.cron_dir(create=True)
        fd = os.open(paths.ticker_lock_path(), os.O_RDWR | os.O_CREAT, paths.FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                os.close(fd)


class InProcessCronScheduler(CronScheduler):
    """The built-in ticker: a loop in the host process that survives anything.

    Every iteration runs ``tick(sync=False)`` inside ``except BaseException``
    — ``SystemExit`` and ``KeyboardInterrupt`` from a job's import or a
    library included, because shutdown is driven by ``stop_event`` alone. A
    failure is logged at ERROR with its traceback and written to
    ``ticker_last_error``; the heartbeat is written after every iteration and
    the success marker only after a clean tick, so ``status`` can tell
    "stalled" from "failing" from "running". While the loop runs, those writes
    and the registry row's are made by a writer thread (:class:`cron.heartbeat.BeatWriter`)
    with the iteration's own time, so a slow disk never delays a due job and a
    stalled loop still goes stale.

    One ticker is active per home: ``start`` first takes ``<home>/cron/ticker.lock``
    (:class:`TickerLock`). While another ticker (a gateway, another host
    process) holds it, ``start`` stands by — no tick, no file written — and
    tries again every ``standby_poll`` seconds, taking over when that ticker
    dies. Only the lock holder writes or removes ``ticker.pid``, the
    heartbeat and the error files. The active ticker also settles runs whose
    owner died (:func:`cron.scheduler.recover_interrupted`) at start and every
    :func:`recover_every` seconds.

    ``runtime``: the :class:`cron.runtime.Runtime` its ticks run on (default: the
    process's, :func:`cron.runtime.default_runtime`); the whole loop runs bound to
    that runtime's home and store, so two tickers on two runtimes share a process.

    Seams (for tests and embedders): ``tick_fn`` replaces ``cron.scheduler.tick``;
    ``wait_fn(stop_event, seconds)`` replaces the sleep, so a test can run
    exactly N iterations by setting ``stop_event`` from it (with it, the loop
    writes its own beats: each is on disk by the next wait).
    """

    def __init__(
        self,
        *,
        tick_fn: TickFn | None = None,
        wait_fn: WaitFn | None = None,
        clock: Callable[[], float] | None = None,
        standby_poll: float = STANDBY_POLL,
        runtime: Runtime | None = None,
    ) -> None:
        self._runtime = runtime
        self._tick_fn = tick_fn
        self._wait_fn = wait_fn
        self._clock = clock
        self._wake = threading.Event()
        self._standby_poll = standby_poll
        self.iterations = 0
        self.active = False
        """True while this ticker holds the home's ticker lock and ticks."""
        self.standing_by = False
        """True while another ticker is active and this one waits to take over."""
        self._registration: Registration | None = None
        self._writer: heartbeat.BeatWriter | None = None

    @property
    def name(self) -> str:
        return "builtin"

    @property
    def runtime(self) -> Runtime:
        """The runtime this ticker's ticks run on."""
        return self._runtime if self._runtime is not None else default_runtime()

    def on_jobs_changed(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._wake.set()

    # The loop -----------------------------------------------------------------

    def start(
        self,
        stop_event: threading.Event,
        *,
        adapters: Any = None,
        loop: asyncio.AbstractEventLoop | None = None,
        interval: float = 60,
    ) -> None:
        with self.runtime.bound():
            self._start(stop_event, adapters=adapters, loop=loop, interval=interval)

    def _start(
        self,
        stop_event: threading.Event,
        *,
        adapters: Any,
        loop: asyncio.AbstractEventLoop | None,
        interval: float,
    ) -> None:
        from cron import jobs

        set_active_provider(self)
        lock = TickerLock()
        store: JobStore | None = None
        hint = self._wake.set
        try:
            if not self._become_active(lock, stop_event):
                return
            try:
                heartbeat.write_ticker_pid(self.name)
            except BaseException:
                log.exception("could not write the ticker pid file")
            self._register()
            store = _store_or_none()
            if store is not None:
                # Another node's change wakes this ticker (PostgreSQL: LISTEN/NOTIFY).
                try:
                    store.subscribe(hint)
                except Exception:
                    log.exception("could not subscribe to the store's change hints; polling")
            self._recover()
            every = recover_every(store.claim_ttl if store is not None else RECOVER_EVERY)
            next_recover = time.monotonic() + every
            # Before the first beat overwrites it: a stale one means we were down (status).
            from cron.audit import note_ticker_start

            note_ticker_start()
            self._beat(jobs, success=False)
            # From here on the loop's beats are written off this thread (BeatWriter) — with
            # the real sleep only: a wait_fn seam sees each beat written at its next wait.
            if self._wait_fn is None:
                try:
                    self._writer = heartbeat.BeatWriter(self._write_beat, self.runtime.spawn)
                except BaseException:
                    log.exception("no heartbeat writer thread; the loop writes its beats itself")
            while not stop_event.is_set():
                self.run_iteration(adapters=adapters, loop=loop)
                # Read once after the tick: every sleep until the next tick compares with it.
                since = self._store_version()
                while not stop_event.is_set():
                    if time.monotonic() >= next_recover:
                        self._recover()
                        next_recover = time.monotonic() + every
                    try:
                        delay, wake = self._wake_plan(interval)
                    except BaseException:
                        log.exception("could not compute the next wake-up; sleeping %ss", interval)
                        delay, wake = interval, None
                    until_recover = max(0.0, next_recover - time.monotonic())
                    if until_recover >= delay:
                        self._sleep_to(stop_event, delay, wake, since)
                        break
                    # A recovery pass comes first (cron.interval may be longer than
                    # claim_ttl): it needs no tick, so a quiet ticker stays quiet. Woken
                    # early (a change, a stop), it ticks at once.
                    if self._sleep(stop_event, until_recover, since):
                        break
        finally:
            if self._writer is not None:
                # The last beat is on disk before the registry row goes and the lock is let go.
                self._writer.close(BEAT_FLUSH)
                self._writer = None
            set_active_provider(None)
            if store is not None:
                with contextlib.suppress(Exception):
                    store.unsubscribe(hint)
            if self._registration is not None:
                self._registration.remove()
                self._registration = None
            if lock.held:
                heartbeat.remove_ticker_pid()
            lock.release()
            self.active = False

    def _become_active(self, lock: TickerLock, stop_event: threading.Event) -> bool:
        """Take the ticker lock, standing by while another ticker holds it.

        Returns False if ``stop_event`` is set first. A standby writes nothing:
        the pid file, heartbeat and error files belong to the active ticker.
        """
        try:
            if lock.try_acquire():
                self.active = True
                return True
        except OSError:
            log.exception("cannot open the ticker lock %s", paths.ticker_lock_path())
        holder = heartbeat.read_ticker_pid() or {}
        log.info(
            "another ticker (pid %s) is active on %s; standing by to take over if it stops",
            holder.get("pid", "?"),
            paths.home(),
        )
        self.standing_by = True
        try:
            while not stop_event.wait(self._standby_poll):
                try:
                    if lock.try_acquire():
                        break
                except OSError:
                    log.exception("cannot open the ticker lock %s", paths.ticker_lock_path())
            else:
                return False
        finally:
            self.standing_by = False
        self.active = True
        log.info("the active ticker is gone; this process (pid %d) takes over", os.getpid())
        return True

    def _recover(self) -> None:
        try:
            from cron.scheduler import recover_interrupted

            recover_interrupted()
        except BaseException:
            log.exception("could not recover interrupted executions")

    def _register(self) -> None:
        # The store's registry row (SPEC §11): every node of a shared store lists it.
        try:
            from cron.registry import Registration
            from cron.store import get_store

            self._registration = Registration(get_store(), provider=self.name)
        except BaseException:
            log.exception("could not register this ticker in the store's registry")

    def _beat(self, jobs_mod: Any, *, success: bool, error: str | None = None) -> None:
        """Record one iteration: posted to the loop's writer while the loop runs, written
        here otherwise (``run_iteration`` called on its own, the first beat)."""
        beat = heartbeat.Beat(time.time(), success, error)
        if self._writer is not None:
            self._writer.post(beat)
            return
        self._write_beat(beat, jobs_mod)

    def _write_beat(self, beat: heartbeat.Beat, jobs_mod: Any = None) -> None:
        from datetime import UTC, datetime

        mod = jobs_mod
        if mod is None:
            from cron import jobs as mod
        try:
            # The iteration's own time, not the write's: a late write never looks fresher.
            mod.record_ticker_heartbeat(
                success=beat.success, now=datetime.fromtimestamp(beat.at, UTC)
            )
        except BaseException:
            # record_ticker_heartbeat is best-effort already; this is belt and braces.
            log.exception("heartbeat write failed")
        if beat.success:
            # Here too, not on the loop's thread: removing a file waits for the directory,
            # which a slow heartbeat rename holds.
            try:
                mod.clear_ticker_error()
            except BaseException:
                log.exception("could not clear the tick error")
        if self._registration is not None:
            try:
                self._registration.beat(ok=beat.success, error=beat.error)
            except BaseException:
                log.exception("registry heartbeat failed")

    def run_iteration(
        self, *, adapters: Any = None, loop: asyncio.AbstractEventLoop | None = None
    ) -> bool:
        """One tick plus its bookkeeping; True if the tick was clean. Never raises."""
        from cron import jobs

        self.iterations += 1
        tick = self._tick_fn or self.runtime.tick
        clean = False
        error: str | None = None
        try:
            if tick(sync=False, adapters=adapters, loop=loop) and self._tick_fn is None:
                # The heartbeat and the next wake-up's store reads wait (briefly) for
                # the starts just dispatched, rather than compete with them.
                self.runtime.wait_for_starts(STARTS_WAIT)
            clean = True
        except BaseException as exc:
            log.exception("cron tick failed; the ticker keeps running")
            error = f"{type(exc).__name__}: {exc}"
            try:
                jobs.record_ticker_error(error)
            except BaseException:
                log.exception("could not record the tick error")
        self._beat(jobs, success=clean, error=error)
        return clean

    def next_delay(self, interval: float) -> float:
        """Seconds until the earliest due job, capped by ``interval`` (0 when overdue)."""
        return self._wake_plan(interval)[0]

    def _wake_plan(self, interval: float) -> tuple[float, datetime | None]:
        """``(next_delay, the due job's wake time)``; the time is None when ``interval``
        caps the delay (no job due before it)."""
        from cron.store import get_store

        store = get_store()
        wake = store.next_wake()
        if wake is None:
            return float(interval), None
        # The store's clock by default: wake times were computed by it (SPEC §11).
        now = self._clock() if self._clock is not None else store.clock().timestamp()
        until = wake.timestamp() - now
        if until >= interval:
            return float(interval), None
        return max(0.0, until), wake

    def _sleep_to(
        self,
        stop_event: threading.Event,
        delay: float,
        wake: datetime | None,
        since: object | None,
    ) -> None:
        """Sleep ``delay``; a sleep that ends at a due job's ``wake`` reads the jobs due
        by then :data:`PREFETCH_LEAD` before it, so the tick at ``wake`` starts with
        the claim (``Runtime.prefetch_due``). Woken early, it skips that read."""
        if wake is None or delay <= PREFETCH_LEAD or self._tick_fn is not None:
            self._sleep(stop_event, delay, since)
            return
        deadline = time.monotonic() + delay
        if self._sleep(stop_event, delay - PREFETCH_LEAD, since):
            return  # a change or a stop: the tick comes now and reads afresh
        try:
            self.runtime.prefetch_due(wake)
        except BaseException:
            log.exception("could not read the jobs due at %s ahead of time", wake.isoformat())
        self._sleep(stop_event, max(0.0, deadline - time.monotonic()), since)

    def _sleep(
        self, stop_event: threading.Event, delay: float, since: object | None = None
    ) -> bool:
        """Sleep; True unless the whole ``delay`` passed with no stop and no change.

        A ``wait_fn`` seam cannot say why it returned: it counts as a wake.
        """
        if self._wait_fn is not None:
            try:
                self._wait_fn(stop_event, delay)
            except BaseException:
                log.exception("the ticker's wait raised; continuing")
            return True
        return self.wait(stop_event, delay, since=since)

    def _store_version(self) -> object | None:
        from cron.store import get_store

        try:
            return get_store().version()
        except Exception:
            return None

    def wait(
        self, stop_event: threading.Event, delay: float, *, since: object | None = None
    ) -> bool:
        """Sleep up to ``delay`` s; wake early on stop, on ``on_jobs_changed``,
        or when another process changes the store (checked every 0.2 s).

        ``since``: the store version to compare with (default: the version now);
        the loop passes the one it read right after its tick, so a change made
        between two sleeps is not missed. Returns True when woken early (stop
        or change), False when ``delay`` ran out.
        """
        from cron.store import get_store

        store = get_store()
        deadline = time.monotonic() + delay
        version = since if since is not None else self._store_version()
        while not stop_event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._wake.wait(min(remaining, 0.2)):
                self._wake.clear()
                return True
            if deadline - time.monotonic() <= 0:
                return False  # the wait is over: no store read between it and the tick
            try:
                if version is not None and store.version() != version:
                    return True
            except Exception:
                return True
        return True


__all__ = [
    "RECOVER_EVERY",
    "STANDBY_POLL",
    "BEAT_FLUSH",
    "PREFETCH_LEAD",
    "STARTS_WAIT",
    "InProcessCronScheduler",
    "TickerLock",
    "recover_every",
]
