"""``cronkit gateway``: the foreground process that runs the trigger and serves the webhook.

One gateway per home. ``<home>/cron/gateway.lock`` is held (``flock``, never
blocking) for the whole life of the process, so the kernel releases it when
the process dies however it dies: a stale ``gateway.pid`` left by a crash
never blocks the next start, and a live gateway is never started twice.

Lifecycle::

    lock -> bind the socket (port 0 works) -> resolve the provider, run its
    start() in a daemon thread -> uvicorn in its own thread and event loop ->
    gateway.pid written (readiness) -> wait for SIGINT/SIGTERM

    stop: webhook answers 503 to new fires -> stop_event + provider.stop() ->
    wait for running jobs (up to ``grace``) -> uvicorn exits -> SIGTERM each
    still-running job's process group, SIGKILL 5 s later, rows ``interrupted``
    -> pid file removed -> lock released -> return 0

``cronkit gateway`` (:mod:`cron.cli.service`) is the command line; this module
only runs the gateway, so a host can embed it (``stop_event``) and carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from cron import paths
from cron.config import cfg_get, load_config
from cron.errors import GatewayRunningError

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
READY_TIMEOUT = 15.0
"""Longest wait for uvicorn to start serving before the gateway gives up."""

ReadyCallback = Callable[[dict[str, Any]], None]


def lock_path() -> Path:
    """``<home>/cron/gateway.lock``: held by the live gateway for its whole life."""
    return paths.cron_dir() / "gateway.lock"


def _setup_logging() -> None:
    # A host (the CLI) that configured logging already chose level and format.
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=LOG_FORMAT)


def _read_pid_file() -> dict[str, Any] | None:
    try:
        data = json.loads(paths.gateway_pid_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None


def _acquire_lock() -> int:
    """Hold ``gateway.lock`` or raise :class:`GatewayRunningError` naming the live pid."""
    paths.cron_dir(create=True)
    fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT, paths.FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise
        # The holder may be starting and not have written its pid yet.
        deadline = time.monotonic() + 5.0
        info = _read_pid_file()
        while info is None and time.monotonic() < deadline:
            time.sleep(0.05)
            info = _read_pid_file()
        raise GatewayRunningError(int(info["pid"]) if info else 0, paths.home()) from None
    return fd


def _release_lock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    with contextlib.suppress(OSError):
        os.close(fd)


def _write_pid_file(host: str | None, port: int | None, webhook: bool) -> dict[str, Any]:
    from cron.procinfo import hostname, process_start_time

    pid = os.getpid()
    data: dict[str, Any] = {
        "pid": pid,
        "start": process_start_time(pid),
        "hostname": hostname(),
        "host": host,
        "port": port,
        "started_at": datetime.now(UTC).isoformat(),
        "webhook": webhook,
    }
    paths.atomic_write_text(paths.gateway_pid_path(), json.dumps(data) + "\n", durable=False)
    return data


def _remove_pid_file() -> None:
    # Called only while holding the lock: any pid file is ours or a dead gateway's.
    with contextlib.suppress(FileNotFoundError):
        paths.gateway_pid_path().unlink()


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: the kernel picks one)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class _Server:
    """uvicorn in a thread with its own event loop; uvicorn installs no signal handlers."""

    def __init__(self, app: Any, sock: socket.socket) -> None:
        import uvicorn

        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.sock = sock
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="cronkit-webhook", daemon=True)

    def _run(self) -> None:
        try:
            # Not the main thread, so uvicorn's capture_signals() leaves signals alone.
            asyncio.run(self.server.serve(sockets=[self.sock]))
        except BaseException as exc:  # noqa: B036 - SystemExit from a failed startup too
            self.error = exc
            log.exception("the webhook server stopped unexpectedly")

    def start(self, timeout: float) -> bool:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self, timeout: float) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(2.0)
        with contextlib.suppress(OSError):
            self.sock.close()


class _Signalled:
    """Set by the SIGINT/SIGTERM handler: a plain flag the main loop polls.

    The handler must take no lock. It runs in the main thread between two
    bytecodes, possibly while that thread is inside ``Event.wait`` holding the
    event's (non-reentrant) condition lock: ``Event.set()`` there deadlocks the
    gateway for good (seen in the cluster suite: a node that never stopped).
    """

    def __init__(self) -> None:
        self.flag = False


def _install_signal_handlers(signalled: _Signalled) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}  # embedded in a thread: the caller stops us through the process instead

    def handle(signum: int, frame: FrameType | None) -> None:
        if signalled.flag and signum == signal.SIGINT:
            log.warning("second interrupt: still waiting for running jobs (up to the grace)")
        signalled.flag = True

    previous: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handle)
    return previous


def _restore_signal_handlers(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(sig, handler)


def _running_jobs() -> int:
    from cron import scheduler

    # Ticks and webhook fires share one pool: this counts both.
    return scheduler.running_jobs()


def _wait_for_jobs(deadline: float) -> bool:
    from cron import scheduler

    return scheduler.wait_for_running(max(0.0, deadline - time.monotonic()))


END_WAIT = 5.0
"""After SIGKILL, how long the gateway waits for the killed runs' bookkeeping."""


def _end_running_jobs(grace: float) -> None:
    """After the grace: SIGTERM every running job's process group, SIGKILL 5 s later.

    The runs are recorded ``interrupted`` (their rows and claims settled by the
    normal bookkeeping), so nothing the gateway started outlives it.
    """
    from cron import procgroup, scheduler

    left = _running_jobs()
    log.warning(
        "%d job(s) still running after the %gs grace; ending their process groups "
        "(SIGTERM, then SIGKILL after %gs)",
        left,
        grace,
        procgroup.TERM_GRACE,
    )
    scheduler.interrupt_running(term_grace=procgroup.TERM_GRACE)
    # Wait for the ended runs' bookkeeping, not for runaway python callables: those
    # never end on request (run_gateway closes their rows before it exits).
    deadline = time.monotonic() + END_WAIT
    while time.monotonic() < deadline:
        runaway = sum(1 for run in scheduler.live_runs() if run.runaway)
        if _running_jobs() <= runaway:
            return
        time.sleep(0.05)


def run_gateway(
    *,
    host: str | None = None,
    port: int | None = None,
    webhook: bool = True,
    interval: float | None = None,
    grace: float = 30.0,
    ready_callback: ReadyCallback | None = None,
    stop_event: threading.Event | None = None,
) -> int:
    """Run the gateway in the foreground until SIGINT/SIGTERM; return the exit code.

    ``host``/``port`` default to ``cron.webhook.host``/``port`` (loopback,
    8787); ``port=0`` binds an ephemeral port, recorded in ``gateway.pid``.
    ``webhook=False`` runs the trigger only. ``interval`` defaults to
    ``cron.interval``. ``ready_callback(info)`` is called once serving, with
    the pid file's content. ``stop_event`` lets an embedder (or a test) stop
    the gateway without a signal; setting it is what the signal handlers do.

    Raises :class:`GatewayRunningError` (with the live pid) if another
    gateway holds this home. Returns 0 after a clean stop, 1 if the webhook
    could not be served. If jobs are still running when ``grace`` runs out,
    each one's process group gets SIGTERM, then SIGKILL 5 s later, and the
    runs are recorded ``interrupted`` (claims released): nothing started here
    outlives the gateway. A python callable cannot be killed: its row is
    closed (``timeout``, or ``interrupted`` if still within its timeout; claim
    released) and this returns while the callable still runs in a thread of
    this process. New runs in this process then stay refused (until
    :func:`cron.scheduler.allow_starts`), so it never overlaps a run of its own
    job; ``cronkit gateway`` ends the process (``os._exit``) after this
    returns, which ends it.
    """
    from cron import scheduler_provider
    from cron import webhook as webhook_mod

    _setup_logging()
    cfg = load_config()
    bind_host = host if host is not None else str(cfg_get(cfg, "cron", "webhook", "host"))
    bind_port = port if port is not None else int(cfg_get(cfg, "cron", "webhook", "port"))
    every = float(interval if interval is not None else cfg_get(cfg, "cron", "interval"))
    stop = stop_event if stop_event is not None else threading.Event()

    lock_fd = _acquire_lock()
    previous_handlers: dict[int, Any] = {}
    server: _Server | None = None
    app: Any = None
    provider_thread: threading.Thread | None = None
    provider: scheduler_provider.CronScheduler | None = None
    trigger_stop = threading.Event()
    signalled = _Signalled()
    clean = True
    try:
        previous_handlers = _install_signal_handlers(signalled)
        sock: socket.socket | None = None
        bound_port: int | None = None
        if webhook:
            try:
                sock = _bind(bind_host, bind_port)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    log.error(
                        "cannot listen on %s:%s: port %s is already in use; pick another "
                        "with --port (0 = any free port) or run the trigger only with "
                        "--no-webhook",
                        bind_host,
                        bind_port,
                        bind_port,
                    )
                else:
                    log.error(
                        "cannot listen on %s:%s: %s", bind_host, bind_port, exc.strerror or exc
                    )
                return 1
            bound_port = int(sock.getsockname()[1])
            if not _is_loopback(sock.getsockname()[0]):
                log.warning(
                    "the webhook listens on %s, which is not loopback: requests are "
                    "HMAC-authenticated but travel as plain HTTP, and /healthz is open - "
                    "put a TLS proxy or firewall in front",
                    bind_host,
                )
            webhook_mod.load_or_create_secret()

        provider = scheduler_provider.resolve_cron_scheduler(cfg)
        scheduler_provider.set_active_provider(provider)
        chosen = provider

        def run_provider() -> None:
            try:
                chosen.start(trigger_stop, interval=every)
            except BaseException:  # noqa: B036 - the gateway keeps serving the webhook
                log.exception("cron provider %s: start() raised", chosen.name)

        provider_thread = threading.Thread(
            target=run_provider, name=f"cronkit-{provider.name}", daemon=True
        )
        provider_thread.start()

        url = None
        if webhook and sock is not None:
            app = webhook_mod.create_app()
            server = _Server(app, sock)
            if not server.start(READY_TIMEOUT):
                log.error("the webhook server did not start on %s:%s", bind_host, bound_port)
                clean = False
                return 1
            shown = f"[{bind_host}]" if ":" in bind_host else bind_host
            url = f"http://{shown}:{bound_port}{webhook_mod.FIRE_PATH}"
        info = _write_pid_file(bind_host if webhook else None, bound_port, webhook)
        log.info(
            "cronkit gateway started: pid %d, home %s, provider %s, webhook %s",
            os.getpid(),
            paths.home(),
            provider.name,
            url or "disabled (--no-webhook)",
        )
        if ready_callback is not None:
            ready_callback(dict(info))

        # Polled, not stop.wait(): see _Signalled (is_set() takes no lock).
        while not (stop.is_set() or signalled.flag):
            time.sleep(0.2)
            if server is not None and not server.alive:
                log.error("the webhook server died; shutting the gateway down")
                clean = False
                break
        return 0 if clean else 1
    finally:
        stop.set()  # here, not in the signal handler (see _Signalled)
        deadline = time.monotonic() + max(0.0, grace)
        if app is not None:
            app.state.stopping = True
        trigger_stop.set()
        if provider is not None:
            log.info("stopping: waiting up to %gs for running jobs", grace)
            try:
                provider.stop()
            except Exception:
                log.exception("cron provider %s: stop() failed", provider.name)
        if provider_thread is not None:
            provider_thread.join(max(0.0, min(5.0, deadline - time.monotonic())))
        finished = _wait_for_jobs(deadline)
        if server is not None:
            server.stop(5.0)
        # A fire accepted just before the 503 flag took effect may have started late.
        finished = _wait_for_jobs(deadline) and finished
        if not finished:
            _end_running_jobs(grace)
        scheduler_provider.set_active_provider(None)
        _remove_pid_file()
        _release_lock(lock_fd)
        _restore_signal_handlers(previous_handlers)
        from cron import scheduler

        if _running_jobs():
            # Only runs nothing can stop are left (a python callable past its
            # timeout): the process exiting ends them, so their rows say so first.
            left = scheduler.abandon_running("the gateway exited after its grace")
            log.warning(
                "%d run(s) could not be stopped (python callables); exiting ends them", left
            )
        else:
            scheduler.allow_starts()
            log.info("cronkit gateway stopped")
