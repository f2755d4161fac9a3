"""Run output files: ``<home>/cron/output/<job_id>/<UTC stamp>.log``, newest N kept.

One file per run, named by the run's UTC time to the microsecond
(``20261125T031000.123456Z.log``); a second run in the same microsecond gets
``-1``, ``-2``... appended to the stamp. Directories are ``0700`` and files
``0600``: output may hold secrets printed by the job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from cron import paths
from cron.config import cfg_get, read_config
from cron.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_RETENTION = 50

_NAME_RE = re.compile(r"^(\d{8}T\d{6}\.\d{6}Z)(?:-(\d+))?\.log$")


def _stamp(now: datetime | None) -> str:
    dt = now if now is not None else datetime.now(UTC)
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"expected an aware datetime, got naive {dt!r}")
    return dt.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def _job_dir(job_id: str) -> Path:
    # The id becomes a path component: refuse anything that could escape the
    # output directory or hide as a dot-file.
    if (
        not isinstance(job_id, str)
        or not job_id
        or job_id.startswith(".")
        or "/" in job_id
        or "\\" in job_id
        or "\x00" in job_id
    ):
        raise ValueError(f"invalid job id for an output directory: {job_id!r}")
    return paths.output_dir(job_id)


def _sort_key(path: Path) -> tuple[str, int]:
    return _name_key(path.name)


def _name_key(name: str) -> tuple[str, int]:
    m = _NAME_RE.match(name)
    assert m is not None
    return m.group(1), int(m.group(2) or 0)


def _configured_retention() -> int:
    try:
        value = cfg_get(read_config(), "cron", "output_retention", default=DEFAULT_RETENTION)
    except ConfigError as exc:
        # A broken config must not lose a run's output; the ticker reports the
        # config error on its own.
        log.warning("using output retention %d: %s", DEFAULT_RETENTION, exc)
        return DEFAULT_RETENTION
    return int(value)


def _reserve(directory: Path, stamp: str, flags: int = os.O_WRONLY) -> tuple[Path, int]:
    """Create an empty, uniquely named ``0600`` file, open with ``flags``; O_EXCL makes
    the name ours alone. Returns the path and the descriptor (the caller closes it)."""
    n = 0
    while True:
        name = f"{stamp}.log" if n == 0 else f"{stamp}-{n}.log"
        path = directory / name
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, paths.FILE_MODE)
        except FileExistsError:
            n += 1
            continue
        return path, fd


def _reserve_in_job_dir(job_id: str, stamp: str, flags: int = os.O_WRONLY) -> tuple[Path, int]:
    """:func:`_reserve` in the job's output directory, created (``0700`` all the way up)
    only when it is missing: a run start costs no directory checks."""
    directory = _job_dir(job_id)
    try:
        return _reserve(directory, stamp, flags)
    except FileNotFoundError:
        paths.cron_dir(create=True)
        paths.ensure_dir(paths.output_dir())
        paths.ensure_dir(directory)
        return _reserve(directory, stamp, flags)


def write_output(
    job_id: str,
    text: str,
    *,
    now: datetime | None = None,
    retention: int | None = None,
) -> Path:
    """Write one run's output and return its path, then keep only the newest ``retention``.

    ``retention`` defaults to ``cron.output_retention`` (50). The file is
    written atomically (readers never see a partial file) and its name is
    unique even for concurrent writers in the same microsecond. The file just
    written is never pruned, even if ``now`` sorts it before older files.
    """
    keep = _configured_retention() if retention is None else retention
    if keep < 1:
        raise ValueError(f"output retention must be >= 1, got {keep!r}")
    path, fd = _reserve_in_job_dir(job_id, _stamp(now))
    os.close(fd)
    try:
        paths.atomic_write_text(path, text, durable=False)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise
    _prune(job_id, keep, protect=path)
    return path


class LiveOutput:
    """One run's output file, written while the run produces it.

    Created empty at the start of the run (its path goes on the ledger row
    then), appended to by the runner (:meth:`write`), completed by
    :meth:`finish`. At most ``limit`` bytes are streamed; past that the file
    stops growing, and :meth:`finish` replaces it atomically with the run's
    captured output (the runner keeps its tail), so a chatty job's file stays
    as bounded as before. Writes never raise: a full disk must not fail the
    run, it only loses log lines (logged once).
    """

    def __init__(self, path: Path, *, limit: int, fd: int | None = None) -> None:
        self.path = path
        self.limit = limit
        self.written = 0
        self.streamed = False
        self.overflowed = False
        self._failed = False
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND) if fd is None else fd

    def write(self, data: bytes) -> None:
        """Append ``data`` (the runner's thread; not shared between threads)."""
        if not data:
            return
        self.streamed = True
        if self._fd is None or self.overflowed:
            return
        if self.written + len(data) > self.limit:
            self.overflowed = True
            return
        try:
            os.write(self._fd, data)
            self.written += len(data)
        except OSError as exc:
            if not self._failed:
                log.warning("could not write run output to %s: %s", self.path, exc)
            self._failed = True

    def finish(self, output: str, note: str | None = None) -> Path:
        """Complete the file: the run's ``output`` unless it was streamed, then ``note``.

        ``note`` (e.g. ``[cronkit] error: exit status 1``) goes on its own line
        after the output. Returns the path.
        """
        if self.overflowed:
            # Too much streamed: the file becomes exactly the captured output (its tail),
            # replaced atomically so no reader sees it half rewritten.
            self.close()
            paths.atomic_write_text(self.path, _joined(output, note), durable=False)
            return self.path
        if not self.streamed:
            # Nothing streamed (a python target, a runner that returns its output): the
            # file is still empty, and the captured output appended to it is the whole
            # file (a follower sees it grow, as it would have seen it streamed).
            tail = _joined(output, note)
        else:
            tail = (f"\n{note}" if self.written else note) if note else ""
        if tail:
            self._append(tail.encode("utf-8", "replace"))
        self.close()
        return self.path

    def _append(self, data: bytes) -> None:
        if self._fd is None:
            with open(self.path, "ab") as fh:
                fh.write(data)
            return
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _joined(output: str, note: str | None) -> str:
    if not note:
        return output
    return f"{output}\n{note}" if output else note


def open_output(
    job_id: str,
    *,
    now: datetime | None = None,
    retention: int | None = None,
    limit: int = 1024 * 1024,
) -> LiveOutput:
    """Create the (empty) output file of a run starting now and return it open for appending.

    Named and pruned like :func:`write_output`: the new file counts toward
    ``retention`` and is never the one pruned.
    """
    keep = _configured_retention() if retention is None else retention
    if keep < 1:
        raise ValueError(f"output retention must be >= 1, got {keep!r}")
    path, fd = _reserve_in_job_dir(job_id, _stamp(now), os.O_WRONLY | os.O_APPEND)
    live = LiveOutput(path, limit=limit, fd=fd)
    _prune(job_id, keep, protect=path)
    return live


def _prune(job_id: str, keep: int, *, protect: Path) -> None:
    # On every run start: names, not Path objects, and no sort unless some must go.
    directory = _job_dir(job_id)
    try:
        names = [n for n in os.listdir(directory) if _NAME_RE.match(n) and n != protect.name]
    except FileNotFoundError:
        return
    excess = len(names) + 1 - keep
    if excess <= 0:
        return
    for old in sorted(names, key=_name_key)[:excess]:
        # A concurrent writer may be pruning the same files.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(directory / old)


def list_outputs(job_id: str) -> list[Path]:
    """The job's output files, oldest to newest (empty if it never ran)."""
    directory = _job_dir(job_id)
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return []
    return sorted((p for p in entries if _NAME_RE.match(p.name)), key=_sort_key)


def read_output(path: str | Path) -> str:
    """The text of one output file (undecodable bytes replaced)."""
    return Path(path).read_text(encoding="utf-8", errors="replace")
