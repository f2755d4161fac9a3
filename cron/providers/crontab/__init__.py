"""The system crontab as cronkit's trigger: cron decides *when*, cronkit does the rest.

Select it with ``cron.provider: crontab``. The operating system's cron daemon
(Debian's ``cron``) fires ``cronkit fire <id>`` at each job's minute; the
store, the claim, the ledger and ``status`` stay cronkit's. No long-lived
gateway is needed ("scale to zero"): ``cronkit add/edit/pause/resume/remove``
rewrite the crontab at once through ``on_jobs_changed``.

What goes into the crontab (see :mod:`cron.providers.crontab.table` and
``docs/crontab-provider.md``):

- one block per ``CRONKIT_HOME``, between ``# BEGIN cronkit <home>`` and
  ``# END cronkit <home>``; every line outside it is left byte for byte;
- one line per active job whose schedule cron can express exactly (5-field
  cron in the daemon's zone), running ``python -m cron fire ID
  --scheduled-at <the daemon's minute>``: the claim rejects a slot earlier than
  ``next_run_at``, so a duplicate delivery of the same minute is a no-op;
- one per-minute sweep line, ``python -m cron tick``, present only while some
  active job cannot be expressed (intervals, one-shots, non-zero seconds,
  ``L``/``W``/``#``, a zone other than the daemon's). Those fire up to 60 s
  late (sub-minute intervals at most once a minute), through the same claim.

Only optional hooks are overridden (``is_available``, ``on_jobs_changed``,
``reconcile``) plus the two abstract members; ``stop`` keeps the default: the
crontab is meant to outlive the process that wrote it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import shutil
import site
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cron import paths
from cron.model import is_active
from cron.providers.crontab import table
from cron.providers.crontab.table import CrontabError, CrontabRenderError
from cron.trigger import CronScheduler

log = logging.getLogger(__name__)

LOCK_WAIT = 10.0
LOG_MAX_BYTES = 1 << 20
LOG_KEEP_BYTES = 256 << 10
RECONCILE_HINT = "run 'cronkit providers --reconcile'"


@dataclass(frozen=True)
class SyncReport:
    """How the installed block compares with the block the store asks for."""

    desired: list[str]
    actual: list[str] | None  # None: no block for this home in the crontab
    missing: list[str] = field(default_factory=list)  # active jobs with no line: will NOT fire
    changed: list[str] = field(default_factory=list)  # jobs whose line differs (time, command)
    stale: list[str] = field(default_factory=list)  # lines for jobs no longer active (harmless)
    sweep_missing: bool = False  # a job needs the sweep, the sweep line is absent
    sweep_stale: bool = False  # the sweep line is there but no job needs it (harmless)
    swept: int = 0  # active jobs fired by the sweep
    stray_markers: int = 0

    @property
    def in_sync(self) -> bool:
        return (self.actual or []) == self.desired and not self.stray_markers

    @property
    def will_miss(self) -> bool:
        """Some active job would not fire on time with the crontab as it is."""
        return bool(self.missing or self.changed or self.sweep_missing)


def _default_pythonpath() -> str | None:
    """The directory holding the ``cron`` package, unless a plain interpreter finds it anyway.

    A line started by cron has no virtualenv activation and no ``PYTHONPATH``;
    pointing it at the package the writing process imported makes the fire run
    the same code. Omitted for a regular install into site-packages.
    """
    import cron

    root = str(Path(cron.__file__).resolve().parent.parent)
    try:
        sites = set(site.getsitepackages())
    except AttributeError:  # some embedded/virtualenv builds lack it
        sites = set()
    with contextlib.suppress(Exception):
        sites.add(site.getusersitepackages())
    for key in ("purelib", "platlib"):
        with contextlib.suppress(KeyError):
            sites.add(sysconfig.get_paths()[key])
    resolved = {str(Path(s).resolve()) for s in sites if s}
    return None if root in resolved else root


def _daemon_visible() -> bool | None:
    """Is a ``cron``/``crond`` process visible in /proc? None when /proc cannot tell."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm", encoding="utf-8") as fh:
                if fh.read().strip() in ("cron", "crond"):
                    return True
        except OSError:
            continue
    return False


class CrontabScheduler(CronScheduler):
    """Trigger provider ``crontab``: converges the user's crontab toward ``jobs.json``.

    Seams: ``crontab_cmd`` (argv prefix of the crontab binary, e.g. a wrapper
    in tests), ``user`` (``crontab -u USER``, root only; None = the invoking
    user), ``python`` and ``pythonpath`` (what the lines run; default: this
    interpreter, absolute, so the line needs no ``PATH``), ``daemon_tz`` (the
    zone the daemon reads its fields in; default ``/etc/localtime``),
    ``daemon_probe`` (is a cron daemon running? True/False, None = cannot
    tell; default looks for a ``cron``/``crond`` process in /proc).

    Note for operators: ``stop()`` does not remove the block — firing without
    a live cronkit process is the point. :meth:`remove_block` uninstalls it.
    """

    def __init__(
        self,
        crontab_cmd: Sequence[str] = ("crontab",),
        user: str | None = None,
        *,
        python: str | None = None,
        pythonpath: str | None = "",
        daemon_tz: str | None = None,
        daemon_probe: Callable[[], bool | None] = _daemon_visible,
        timeout: float = 10.0,
    ) -> None:
        if not crontab_cmd:
            raise ValueError("crontab_cmd must name the crontab binary")
        self.crontab_cmd = tuple(crontab_cmd)
        self.user = user
        self.python = python or os.path.abspath(sys.executable)
        self._pythonpath = pythonpath
        self.daemon_tz = daemon_tz
        self.daemon_probe = daemon_probe
        self.timeout = timeout

    # -- the abstract surface ---------------------------------------------------------

    @property
    def name(self) -> str:
        return "crontab"

    def start(
        self,
        stop_event: threading.Event,
        *,
        adapters: Any = None,
        loop: asyncio.AbstractEventLoop | None = None,
        interval: float = 60,
    ) -> None:
        """Converge the crontab once and return: from here on cron does the triggering.

        With ``stop_event`` already set (the host is shutting down) it returns
        without touching anything. A failure is logged, never raised: the
        host keeps running and ``status`` reports the drift.
        """
        if stop_event.is_set():
            return
        try:
            self.reconcile()
        except Exception as exc:
            log.error("crontab provider: could not converge the crontab: %s", exc)

    # -- optional hooks -----------------------------------------------------------------

    def is_available(self) -> bool:
        """True when the crontab binary exists. No process is run, nothing is probed."""
        return shutil.which(self.crontab_cmd[0]) is not None

    def on_jobs_changed(self) -> None:
        """Re-converge after ``add``/``edit``/``pause``/``resume``/``remove``.

        The store change is already durable, so a failure here is one WARNING
        (not a traceback); ``status`` then shows the block OUT OF SYNC.
        """
        try:
            self.reconcile()
        except Exception as exc:
            log.warning(
                "crontab provider: the crontab was not updated after the job change (%s); "
                "%s once that is fixed",
                exc,
                RECONCILE_HINT,
            )

    def reconcile(self) -> None:
        """Rewrite this home's block so it matches the store; raise :class:`CrontabError` if not."""
        self.sync()

    # -- the work -------------------------------------------------------------------------

    @property
    def home(self) -> str:
        return str(paths.home().expanduser().resolve())

    def invocation(self) -> table.Invocation:
        pythonpath = _default_pythonpath() if self._pythonpath == "" else self._pythonpath
        return table.Invocation(self.home, self.python, pythonpath)

    def placements(self) -> list[table.Placement]:
        """Where each active job fires from (its own line, or the sweep and why)."""
        from cron.config import cfg_get, load_config
        from cron.jobs import list_jobs

        cfg = load_config()
        configured = str(cfg_get(cfg, "cron", "timezone", default="") or "").strip()
        daemon = self.daemon_tz if self.daemon_tz is not None else table.system_zone_name()
        return [
            table.place(job, configured_zone=configured, daemon_zone=daemon)
            for job in list_jobs()
            if is_active(job)
        ]

    def desired_block(self) -> list[str]:
        return table.render_block(self.invocation(), self.placements())

    def sync(self) -> bool:
        """Converge the crontab; True if it was rewritten, False if it already matched.

        Read the store first: a store that cannot be read raises before the
        crontab is touched, so a broken ``jobs.json`` never empties the block.
        """
        block = self.desired_block()
        home = self.home
        if block:
            self._prepare_home()
        with self._locked():
            current = self.read_crontab()
            text = current or ""
            wanted = table.splice(text, home, block)
            if wanted == text and (current is not None or not wanted):
                return False
            self.write_crontab(wanted)
        log.info("crontab provider: crontab updated for %s (%d line block)", home, len(block))
        return True

    def remove_block(self) -> bool:
        """Uninstall: delete this home's block (other lines untouched). True if one was there."""
        with self._locked():
            current = self.read_crontab()
            if current is None:
                return False
            wanted = table.splice(current, self.home, [])
            if wanted == current:
                return False
            self.write_crontab(wanted)
        return True

    def check(self) -> SyncReport:
        """Compare the installed block with the desired one (reads, never writes)."""
        placements = self.placements()
        desired = table.render_block(self.invocation(), placements)
        parsed = table.parse(self.read_crontab() or "", self.home)
        actual = parsed.block
        want_ids = table.block_job_ids(desired)
        have_ids = table.block_job_ids(actual or [])
        want_sweep = table.has_sweep(desired)
        have_sweep = table.has_sweep(actual or [])
        return SyncReport(
            desired=desired,
            actual=actual,
            missing=[i for i in want_ids if i not in have_ids],
            changed=[i for i in want_ids if i in have_ids and have_ids[i] != want_ids[i]],
            stale=[i for i in have_ids if i not in want_ids],
            sweep_missing=want_sweep and not have_sweep,
            sweep_stale=have_sweep and not want_sweep,
            swept=sum(1 for p in placements if not p.own_line),
            stray_markers=parsed.stray_markers + len(parsed.extra),
        )

    def in_sync(self) -> bool:
        """True when the installed block is exactly what the store asks for."""
        return self.check().in_sync

    def status_detail(self) -> str:
        """One line for ``cronkit status``: is the block in sync, will the jobs fire?"""
        try:
            report = self.check()
        except Exception as exc:
            return f"crontab state unknown: {exc}"
        lines = len(table.block_job_ids(report.desired))
        if report.in_sync:
            if not report.desired:
                text = "no crontab block (no active jobs)"
            else:
                text = f"crontab block in sync ({lines} job line{'s' if lines != 1 else ''}"
                if report.swept:
                    text += f", per-minute sweep for {report.swept} job(s)"
                text += ")"
        elif report.will_miss:
            why = []
            if report.missing:
                why.append(f"no line for {', '.join(report.missing)}")
            if report.changed:
                why.append(f"outdated line for {', '.join(report.changed)}")
            if report.sweep_missing:
                why.append(f"sweep line missing ({report.swept} job(s) need it)")
            text = (
                f"crontab block OUT OF SYNC: {'; '.join(why)} - those jobs will NOT fire "
                f"on time; {RECONCILE_HINT}"
            )
        else:
            extra = []
            if report.stale:
                extra.append(f"{len(report.stale)} line(s) for jobs no longer active")
            if report.sweep_stale:
                extra.append("an unneeded sweep line")
            if report.stray_markers:
                extra.append("damaged block markers")
            if not extra:
                extra.append("hand-edited block")
            text = (
                f"crontab block OUT OF SYNC (harmless: {', '.join(extra)}; every active job "
                f"fires on time); {RECONCILE_HINT}"
            )
        if report.desired and self.daemon_probe() is False:
            text += "; WARNING: no cron daemon process is running - nothing will fire"
        return text

    # -- the crontab binary -------------------------------------------------------------------

    def _argv(self, *args: str) -> list[str]:
        argv = list(self.crontab_cmd)
        if self.user:
            argv += ["-u", self.user]
        return argv + list(args)

    def _run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, LC_ALL="C")
        try:
            return subprocess.run(
                self._argv(*args),
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                env=env,
                check=False,
            )
        except FileNotFoundError:
            raise CrontabError(
                f"no crontab binary {self.crontab_cmd[0]!r} (install cron)"
            ) from None
        except subprocess.TimeoutExpired:
            raise CrontabError(
                f"'crontab {' '.join(args)}' did not finish in {self.timeout:.0f}s"
            ) from None

    def read_crontab(self) -> str | None:
        """The crontab's text exactly as installed, or None when the user has none."""
        proc = self._run("-l")
        if proc.returncode == 0:
            return proc.stdout
        if "no crontab for" in proc.stderr:
            return None
        raise CrontabError(f"cannot read the crontab: {proc.stderr.strip() or proc.returncode}")

    def write_crontab(self, text: str) -> None:
        """Install ``text`` (empty: remove the crontab altogether)."""
        if text == "":
            proc = self._run("-r")
            if proc.returncode != 0 and "no crontab for" not in proc.stderr:
                raise CrontabError(f"cannot remove the crontab: {proc.stderr.strip()}")
            return
        proc = self._run("-", stdin=text)
        if proc.returncode != 0:
            raise CrontabError(f"crontab rejected the new table: {' '.join(proc.stderr.split())}")

    # -- housekeeping -----------------------------------------------------------------------------

    def _prepare_home(self) -> None:
        """The lines append their stderr to ``<home>/cron/crontab.log``: make sure it can exist."""
        paths.cron_dir(create=True)
        log_path = paths.cron_dir() / "crontab.log"
        try:
            size = log_path.stat().st_size
        except OSError:
            return
        if size <= LOG_MAX_BYTES:
            return
        try:
            with open(log_path, "rb") as fh:
                fh.seek(-LOG_KEEP_BYTES, os.SEEK_END)
                tail = fh.read()
            paths.atomic_write_bytes(log_path, tail, durable=False)
        except OSError:
            log.warning("could not trim %s", log_path, exc_info=True)

    def _lock_path(self) -> Path:
        target = self.user or pwd.getpwuid(os.getuid()).pw_name
        base = Path("/tmp") if os.path.isdir("/tmp") else Path(paths.cron_dir(create=True))
        return base / f"cronkit-crontab-{os.getuid()}-{target}.lock"

    def _open_lock(self) -> int:
        """A lock per crontab (not per home: two homes share one crontab)."""
        path = self._lock_path()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            if os.fstat(fd).st_uid == os.getuid():
                return fd
            os.close(fd)
        except OSError:
            pass
        # Someone else owns (or booby-trapped) the shared path: lock inside our home.
        paths.cron_dir(create=True)
        return os.open(paths.cron_dir() / ".crontab.lock", os.O_RDWR | os.O_CREAT, 0o600)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        def timeout() -> CrontabError:
            return CrontabError(f"another process held the crontab lock for {LOCK_WAIT:.0f}s")

        with paths.flock_held(self._open_lock(), time.monotonic() + LOCK_WAIT, timeout):
            yield


__all__ = ["CrontabError", "CrontabRenderError", "CrontabScheduler", "SyncReport"]
