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
    m = _NAME_RE.match(path.name)
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


def _reserve(directory: Path, stamp: str) -> Path:
    """Create an empty, uniquely named ``0600`` file; O_EXCL makes the name ours alone."""
    n = 0
    while True:
        name = f"{stamp}.log" if n == 0 else f"{stamp}-{n}.log"
        path = directory / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, paths.FILE_MODE)
        except FileExistsError:
            n += 1
            continue
        os.close(fd)
        return path


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
    directory = _job_dir(job_id)
    paths.cron_dir(create=True)
    paths.ensure_dir(paths.output_dir())
    paths.ensure_dir(directory)
    path = _reserve(directory, _stamp(now))
    try:
        paths.atomic_write_text(path, text, durable=False)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise
    _prune(job_id, keep, protect=path)
    return path


def _prune(job_id: str, keep: int, *, protect: Path) -> None:
    files = [p for p in list_outputs(job_id) if p != protect]
    excess = len(files) + 1 - keep
    for old in files[: max(excess, 0)]:
        # A concurrent writer may be pruning the same files.
        with contextlib.suppress(FileNotFoundError):
            old.unlink()


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
