"""Where cronkit keeps its files, and the one atomic-write routine they share.

Every path is resolved at call time from ``$CRONKIT_HOME`` (else
``~/.cronkit``), so a test that points the variable at a temp dir gets a fully
isolated installation. :func:`bound_home` overrides it for one context (a
``cron.runtime.Runtime`` bound to a home runs its threads in it). Directories
are created ``0700`` and files ``0600``: job commands and the webhook secret
are private to the operator.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import fcntl
import functools
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


_BOUND_HOME: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "cronkit_home", default=None
)


def home() -> Path:
    env = _BOUND_HOME.get() or os.environ.get("CRONKIT_HOME")
    return _home_for(env, None if env else os.environ.get("HOME"))


@contextlib.contextmanager
def bound_home(path: str | os.PathLike[str]) -> Iterator[None]:
    """Resolve :func:`home` to ``path`` in this context (thread) for the block, whatever
    ``$CRONKIT_HOME`` says: two runtimes on two homes share one process."""
    token = _BOUND_HOME.set(os.fspath(path))
    try:
        yield
    finally:
        _BOUND_HOME.reset(token)


# Paths are resolved on every call (CRONKIT_HOME may change), but building a Path
# costs microseconds that a claim pays several times: memoised on the inputs.
@functools.lru_cache(maxsize=64)
def _home_for(env: str | None, user_home: str | None) -> Path:
    return Path(env).expanduser() if env else Path.home() / ".cronkit"


@functools.lru_cache(maxsize=512)
def _under(base: Path, name: str) -> Path:
    return base / name


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and any missing parents) with mode 0700; return it.

    Parents are created one by one rather than with ``parents=True``, which
    would give them the umask's mode (often 0755) — ``<home>`` included.
    """
    if path.is_dir():
        return path
    if not path.parent.exists():
        ensure_dir(path.parent)
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        return path
    os.chmod(path, DIR_MODE)  # mkdir's mode is filtered through the umask
    return path


def cron_dir(*, create: bool = False) -> Path:
    d = _under(home(), "cron")
    if create:
        ensure_dir(home())
        ensure_dir(d)
    return d


def config_path() -> Path:
    return _under(home(), "config.yaml")


def jobs_path() -> Path:
    return _under(cron_dir(), "jobs.json")


def executions_path() -> Path:
    return _under(cron_dir(), "executions.db")


def output_dir(job_id: str | None = None) -> Path:
    d = _under(cron_dir(), "output")
    return d / job_id if job_id else d


def plugins_dir() -> Path:
    return _under(home(), "plugins")


def webhook_secret_path() -> Path:
    return _under(home(), "webhook_secret")


def heartbeat_path() -> Path:
    return _under(cron_dir(), "ticker_heartbeat")


def last_success_path() -> Path:
    return _under(cron_dir(), "ticker_last_success")


def last_error_path() -> Path:
    return _under(cron_dir(), "ticker_last_error")


def ticker_pid_path() -> Path:
    return _under(cron_dir(), "ticker.pid")


def ticker_lock_path() -> Path:
    """Held (``flock``) by the one active ticker of this home for its whole life."""
    return _under(cron_dir(), "ticker.lock")


def gateway_pid_path() -> Path:
    return _under(cron_dir(), "gateway.pid")


def tick_lock_path() -> Path:
    return _under(cron_dir(), ".tick.lock")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a mix.

    Temp file in the same directory (rename is only atomic within one file
    system), flush + fsync, rename over the target, fsync the directory so the
    rename itself survives a power cut. If any step raises, the temp file is
    removed and the previous ``path`` is untouched. ``durable=False`` skips the
    fsyncs for best-effort files such as the heartbeat.
    """
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), FILE_MODE)
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


def flock_until(fd: int, deadline: float, *, max_delay: float = 0.05) -> bool:
    """Take an exclusive ``flock`` on ``fd``, polling until ``deadline`` (monotonic).

    Returns False on timeout. Polls with exponential back-off rather than a
    blocking ``flock`` so the wait stays bounded. Errors other than contention
    propagate.
    """
    delay = 0.0005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, max_delay)


@contextlib.contextmanager
def flock_held(
    fd: int, deadline: float, on_timeout: Callable[[], BaseException], *, max_delay: float = 0.05
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``fd`` for the block, then unlock and close ``fd``.

    Raises ``on_timeout()`` if the lock is not had by ``deadline`` (monotonic).
    """
    try:
        if not flock_until(fd, deadline, max_delay=max_delay):
            raise on_timeout()
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
