"""The active ticker's files under ``<home>/cron/`` (SPEC §1, §8): what ``status`` reads.

``ticker_heartbeat`` and ``ticker_last_success`` (epoch seconds), ``ticker_last_error``
(epoch, then ``Type: message``) and ``ticker.pid`` (pid, process start, host, provider).
Only the active ticker writes them; every write is best-effort — a full disk must not
kill the loop whose liveness the files report. A leaf module: the job API, the ticker
and ``status`` all import it, it imports none of them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cron import paths
from cron.procinfo import hostname, pid_alive, process_start_time

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Beat:
    """One ticker iteration, as the ticker saw it: when, clean or not, the error if any."""

    at: float
    success: bool
    error: str | None = None


class BeatWriter:
    """Writes the ticker's newest :class:`Beat` on a thread of its own.

    The heartbeat files are a create, a write and a rename; on a slow disk one such
    write was measured at 100–660 ms, and on the ticker's thread every job due
    meanwhile fired that late. The ticker :meth:`post` s each iteration instead and
    goes on; this thread persists the newest post (older unwritten ones are
    dropped: only the newest matters). Status stays honest: a beat carries the
    ticker's own time, and nothing is written without a post, so a stalled ticker
    goes stale as before (a stuck disk makes it look stale too, never fresh).

    ``write(beat)`` must not raise (it is logged if it does); ``spawn(fn, name)``
    starts the thread (a runtime's, so it writes to the ticker's home and store).
    """

    def __init__(
        self,
        write: Callable[[Beat], None],
        spawn: Callable[[Callable[[], None], str], object],
    ) -> None:
        self._write = write
        self._cond = threading.Condition()
        self._pending: Beat | None = None
        self._posted = 0
        self._written = 0
        self._closed = False
        spawn(self._run, "cronkit-heartbeat")

    def post(self, beat: Beat) -> None:
        """Hand ``beat`` to the writer; returns at once."""
        with self._cond:
            self._pending = beat
            self._posted += 1
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until everything posted so far is written; False if ``timeout`` passed."""
        with self._cond:
            target = self._posted
            return self._cond.wait_for(lambda: self._written >= target, timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Write what is pending (waiting up to ``timeout``), then end the thread."""
        flushed = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        return flushed

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._pending is None:
                    return
                beat, self._pending = self._pending, None
                seq = self._posted
            try:
                self._write(beat)
            except BaseException:
                log.exception("could not write the ticker heartbeat")
            with self._cond:
                self._written = seq
                self._cond.notify_all()


def _epoch(now: datetime | None) -> float:
    if now is None:
        return time.time()
    return (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp()


def _write_epoch(path_fn: Callable[[], Any], value: float, extra: str = "") -> None:
    path = path_fn()
    paths.cron_dir(create=True)
    paths.atomic_write_text(path, f"{value:.3f}\n{extra}", durable=False)


def record_ticker_heartbeat(*, success: bool = True, now: datetime | None = None) -> None:
    """Write ``ticker_heartbeat`` (and ``ticker_last_success`` when ``success``).

    Best-effort by contract: a failure to write is logged, never raised — a
    full disk must not kill the loop whose liveness the file reports.
    """
    epoch = _epoch(now)
    try:
        _write_epoch(paths.heartbeat_path, epoch)
    except Exception:
        log.warning("could not write the ticker heartbeat", exc_info=True)
    if success:
        # Independent of the heartbeat: one unwritable file must not hide the other.
        try:
            _write_epoch(paths.last_success_path, epoch)
        except Exception:
            log.warning("could not write the ticker success marker", exc_info=True)


def record_ticker_error(message: str, *, now: datetime | None = None) -> None:
    """Write ``ticker_last_error``: epoch on line 1, ``Type: message`` after. Best-effort."""
    epoch = _epoch(now)
    try:
        _write_epoch(paths.last_error_path, epoch, message.rstrip("\n") + "\n")
    except Exception:
        log.warning("could not write the ticker error file", exc_info=True)


def clear_ticker_error() -> None:
    try:
        paths.last_error_path().unlink(missing_ok=True)
    except Exception:
        log.warning("could not remove the ticker error file", exc_info=True)


def _read_epoch(path: Any) -> tuple[float | None, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None, ""
    except OSError:
        return None, ""
    first, _, rest = text.partition("\n")
    try:
        return float(first.strip()), rest.strip()
    except ValueError:
        return None, rest.strip()


def read_ticker_heartbeat() -> tuple[float | None, float | None, str | None]:
    """``(heartbeat_epoch, last_success_epoch, last_error)``; None where a file is absent."""
    beat, _ = _read_epoch(paths.heartbeat_path())
    success, _ = _read_epoch(paths.last_success_path())
    err_at, err = _read_epoch(paths.last_error_path())
    error = err if (err or err_at is not None) else None
    return beat, success, error or None


def read_ticker_pid() -> dict[str, Any] | None:
    try:
        data = json.loads(paths.ticker_pid_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None


def live_ticker_pid(info: dict[str, Any] | None) -> int | None:
    """The pid in the ticker pid file if that exact process still runs, else None.

    A pid alone is not proof: after a crash the kernel may reuse it, so the
    recorded process start time must match too.
    """
    if info is None:
        return None
    pid = int(info["pid"])
    if info.get("host") not in (None, hostname()):
        return None
    if not pid_alive(pid):
        return None
    recorded = info.get("start")
    if recorded is not None and process_start_time(pid) != recorded:
        return None
    return pid


def write_ticker_pid(provider: str) -> None:
    from cron.procinfo import hostname, process_start_time

    pid = os.getpid()
    data = {
        "pid": pid,
        "start": process_start_time(pid),
        "host": hostname(),
        "provider": provider,
        "started_at": datetime.now(UTC).isoformat(),
    }
    paths.cron_dir(create=True)
    paths.atomic_write_text(paths.ticker_pid_path(), json.dumps(data) + "\n", durable=False)


def remove_ticker_pid() -> None:
    # Called only by the lock holder: a pid file naming another pid is a dead ticker's.
    try:
        data = json.loads(paths.ticker_pid_path().read_text(encoding="utf-8"))
        if data.get("pid") == os.getpid():
            paths.ticker_pid_path().unlink()
    except (OSError, ValueError):
        pass
