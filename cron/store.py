"""Axis A: where jobs live. ``JobStore`` is the backend seam; ``JsonJobStore`` the default.

The at-most-once rules (``cron.claim``) are pure functions over job dicts; a
backend only has to provide a consistent snapshot and an exclusive
read-modify-write. That is the whole contract, so a SQLite or PostgreSQL
backend passes the same contract suite (``tests/contract/store_contract.py``)
by implementing three methods.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from cron import paths
from cron.errors import StoreCorruptError, StoreLockTimeout

STORE_VERSION = 1
LOCK_TIMEOUT = 10.0

Job = dict[str, Any]
T = TypeVar("T")


class JobStore(ABC):
    """A place jobs live, with one exclusive read-modify-write primitive.

    Required:
        ``load()`` — a consistent snapshot of every job (a fresh list the
        caller may mutate freely).
        ``transaction()`` — a context manager yielding the job list under an
        exclusive, cross-process lock; if the block exits cleanly and changed
        the list, the new list is written atomically before the lock is
        released. If the block raises, nothing is written.

    Optional (defaults are correct but not cheap):
        ``version()`` — an opaque value that changes whenever the stored jobs
        change; ``None`` means "unknown, always reload". Used so an idle tick
        costs a ``stat`` rather than a parse.
        ``wake_at()`` — the earliest instant a tick could have work, computed
        from ``load()`` by default.
    """

    @abstractmethod
    def load(self) -> list[Job]: ...

    @abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[list[Job]]: ...

    def version(self) -> object | None:
        return None

    def wake_at(self) -> datetime | None:
        return due_index(self.load()).wake_at()

    def get(self, job_id: str) -> Job | None:
        """One job (a private copy), or None. Default: a full ``load()``."""
        for job in self.load():
            if job.get("id") == job_id:
                return job
        return None

    def due_candidates(self, now: datetime) -> list[str]:
        """Ids of jobs a tick at ``now`` may have to act on (a superset is fine).

        Default: :func:`due_index` over a full ``load()``.
        """
        return due_index(self.load()).due_ids(now)

    def update_jobs(self, ids: list[str], fn: Callable[[Job | None], T]) -> dict[str, T]:
        """Apply ``fn`` to each job in ``ids`` (``None`` for a missing id) in ONE
        exclusive read-modify-write; return ``{id: fn's result}``.

        ``fn`` mutates the job in place; jobs it leaves equal are not rewritten,
        and if it changes none, nothing is written. Default: a full
        ``transaction()``. Note for implementers: override it when your backend
        can lock and rewrite single rows — claims only ever touch the jobs they name.
        """
        results: dict[str, T] = {}
        with self.transaction() as jobs:
            by_id = {j["id"]: j for j in jobs}
            for job_id in ids:
                results[job_id] = fn(by_id.get(job_id))
        return results


def _parse_ts(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass(frozen=True)
class DueIndex:
    """When each firing job next needs a tick, sorted: the one index behind both
    the idle-tick check (``wake_at``) and the batch claim's candidates."""

    entries: list[tuple[datetime, str]]
    by_id: dict[str, tuple[datetime, str]]

    def wake_at(self) -> datetime | None:
        return self.entries[0][0] if self.entries else None

    def due_ids(self, now: datetime) -> list[str]:
        cut = bisect.bisect_right(self.entries, (now, "\uffff"))
        return [job_id for _, job_id in self.entries[:cut]]

    def with_changes(self, changed: list[Job], claim_ttl: float | None = None) -> DueIndex:
        """The index after ``changed`` jobs were rewritten: O(changed · log n), not a rebuild.

        A claim or a result touches a handful of jobs; re-reading every job's
        timestamps after each write would make a busy tick O(jobs in store).
        """
        entries = list(self.entries)
        by_id = dict(self.by_id)
        ttl = _TtlOnce(claim_ttl)
        for job in changed:
            old = by_id.pop(job["id"], None)
            if old is not None:
                del entries[bisect.bisect_left(entries, old)]
            new = _due_entry(job, ttl)
            if new is not None:
                bisect.insort(entries, new)
                by_id[job["id"]] = new
        return DueIndex(entries, by_id)


class _TtlOnce:
    """``claim_ttl`` from the config, read at most once and only if a job needs it."""

    def __init__(self, value: float | None) -> None:
        self.value = value

    def get(self) -> float:
        if self.value is None:
            from cron.config import cfg_get, load_config

            try:
                self.value = float(cfg_get(load_config(), "cron", "claim_ttl", default=300))
            except ValueError:
                self.value = 300.0
        return self.value


def _due_entry(job: Job, ttl: _TtlOnce) -> tuple[datetime, str] | None:
    if not job.get("enabled", True) or job.get("state") != "scheduled":
        return None
    t = _parse_ts(job.get("next_run_at"))
    if t is None and job.get("fire_claim"):
        at = _parse_ts(job["fire_claim"].get("at"))
        if at is not None:
            t = datetime.fromtimestamp(at.timestamp() + ttl.get(), UTC)
    return (t, job["id"]) if t is not None else None


def due_index(jobs: list[Job], claim_ttl: float | None = None) -> DueIndex:
    """Index the enabled, scheduled jobs by when a tick must look at them.

    That is ``next_run_at`` — or, for a spent job (``next_run_at`` null) whose
    final run crashed and still holds a claim, the claim's expiry: the tick
    that finds it stale marks the job completed. ``claim_ttl`` None means
    "use the configured default".
    """
    ttl = _TtlOnce(claim_ttl)
    by_id: dict[str, tuple[datetime, str]] = {}
    for job in jobs:
        entry = _due_entry(job, ttl)
        if entry is not None:
            by_id[job["id"]] = entry
    return DueIndex(sorted(by_id.values()), by_id)


def _encode(job: Job) -> bytes:
    # Bytes, so a write joins cached pieces without re-encoding the whole file.
    return json.dumps(job, separators=(",", ":")).encode("utf-8")


@dataclass
class _Cached:
    key: tuple[object, ...]
    jobs: list[Job]
    # Built lazily: each job's compact JSON (so a write re-encodes only the
    # jobs it changed), id → position, and the due index for ticks.
    encoded: list[bytes] | None = None
    index: dict[str, int] | None = None
    due: DueIndex | None = None

    def encoded_jobs(self) -> list[bytes]:
        if self.encoded is None:
            self.encoded = [_encode(j) for j in self.jobs]
        return self.encoded

    def positions(self) -> dict[str, int]:
        if self.index is None:
            self.index = {j["id"]: i for i, j in enumerate(self.jobs)}
        return self.index

    def due_index(self) -> DueIndex:
        if self.due is None:
            self.due = due_index(self.jobs)
        return self.due


class JsonJobStore(JobStore):
    """``jobs.json``: ``{"version": 1, "jobs": [...], "updated_at": "<iso>"}``.

    Writes are atomic and durable (``paths.atomic_write_bytes``). Every
    read-modify-write holds ``flock`` on a sibling ``jobs.json.lock`` — a
    separate file because the data file is replaced by rename, which would
    silently detach a lock held on it. The wait is bounded by
    ``lock_timeout``; after it :class:`StoreLockTimeout` is raised.

    A file that cannot be parsed raises :class:`StoreCorruptError` from every
    operation and is never overwritten: the parse happens under the lock
    before any write, and a failed parse aborts the transaction.

    Parsed contents are cached keyed on ``(inode, mtime_ns, size)``; since
    every write is a rename, any change by any process changes the inode.
    """

    def __init__(self, path: Path | None = None, *, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self._explicit = path
        self.lock_timeout = lock_timeout
        self._cache: _Cached | None = None
        # (size, last 48 bytes, contents) of the write in flight, if any.
        self._pending: tuple[int, bytes, _Cached] | None = None
        self._mutex = threading.Lock()
        self._thread_lock = threading.Lock()
        # Tests use this seam to crash a write after the temp file exists.
        self.write_bytes: Callable[[Path, bytes], None] = paths.atomic_write_bytes

    @property
    def path(self) -> Path:
        # Resolved per call: CRONKIT_HOME may change between calls (tests).
        return self._explicit if self._explicit is not None else paths.jobs_path()

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    # -- reading -----------------------------------------------------------

    def _stat_key(self) -> tuple[object, ...] | None:
        """A cheap fingerprint of the file: stat fields plus its last bytes.

        Inodes are reused and mtimes are only as fine as the kernel's clock
        tick, so two quick writes can share ``(inode, mtime, size)``; the tail
        holds ``updated_at`` to the microsecond, which two writes never share.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            st = os.fstat(fd)
            tail = os.pread(fd, 48, max(0, st.st_size - 48))
        finally:
            os.close(fd)
        return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size, tail)

    def version(self) -> object | None:
        return (str(self.path), self._stat_key())

    def _parse(self, data: bytes) -> list[Job]:
        try:
            doc = json.loads(data)
        except json.JSONDecodeError as exc:
            raise StoreCorruptError(
                self.path, f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        except UnicodeDecodeError as exc:
            raise StoreCorruptError(self.path, f"not UTF-8 text ({exc.reason})") from None
        if not isinstance(doc, dict):
            raise StoreCorruptError(self.path, f"expected a JSON object, got {type(doc).__name__}")
        if doc.get("version") != STORE_VERSION:
            raise StoreCorruptError(
                self.path,
                f"unsupported store version {doc.get('version')!r} "
                f"(this cronkit reads version {STORE_VERSION})",
            )
        jobs = doc.get("jobs")
        if not isinstance(jobs, list) or not all(
            isinstance(j, dict) and isinstance(j.get("id"), str) for j in jobs
        ):
            raise StoreCorruptError(self.path, "'jobs' must be a list of objects with an 'id'")
        return jobs

    def _read_current(self, *, fresh: bool = False) -> _Cached:
        """Parse the file unless the cached copy is still current (or ``fresh``)."""
        for _ in range(5):
            key = self._stat_key()
            if key is None:
                return _Cached((), [])
            cached = self._cache
            if not fresh and cached is not None and cached.key == key:
                return cached
            pending = self._pending
            if not fresh and pending is not None and (key[3], key[4]) == pending[:2]:
                # Our own write, renamed into place but not yet finished (the
                # directory fsync): its contents are known, no parse needed.
                # Only this process can be writing now: it holds the lock.
                written = pending[2]
                done = _Cached(key, written.jobs, written.encoded, written.index, written.due)
                self._cache = done
                return done
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                continue
            # Only cache when the file did not change while we read it.
            if self._stat_key() != key:
                continue
            parsed = _Cached(key, self._parse(data))
            self._cache = parsed
            return parsed
        data = self.path.read_bytes()
        return _Cached((), self._parse(data))

    def load(self) -> list[Job]:
        with self._mutex:
            cur = self._read_current()
        copied: list[Job] = json.loads(json.dumps(cur.jobs))  # a private deep copy
        return copied

    def wake_at(self) -> datetime | None:
        with self._mutex:
            return self._read_current().due_index().wake_at()

    # -- writing -----------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The store lock: a thread lock first, then ``flock`` for other processes.

        Threads of one process queue fairly on the thread lock instead of all
        polling ``flock`` (where one unlucky thread can lose every race until
        the timeout); ``flock`` is then contended only between processes.
        """
        deadline = time.monotonic() + self.lock_timeout
        if not self._thread_lock.acquire(timeout=self.lock_timeout):
            raise self._timeout_error()
        try:
            paths.ensure_dir(self.path.parent)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, paths.FILE_MODE)
            with paths.flock_held(fd, deadline, self._timeout_error, max_delay=0.005):
                yield
        finally:
            self._thread_lock.release()

    def _timeout_error(self) -> StoreLockTimeout:
        return StoreLockTimeout(self.path, self.lock_timeout)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[list[Job]]:
        with self._locked():
            with self._mutex:
                # Under the lock the fingerprint is trustworthy: nobody else can write.
                cur = self._read_current()
                before = cur.encoded_jobs()
            jobs: list[Job] = [json.loads(e) for e in before]
            yield jobs
            after = [_encode(j) for j in jobs]
            if after == before:
                return
            self._write(jobs, after)

    def due_candidates(self, now: datetime) -> list[str]:
        with self._mutex:
            return self._read_current().due_index().due_ids(now)

    def get(self, job_id: str) -> Job | None:
        # Decodes one job from the cached JSON instead of copying the whole store.
        with self._mutex:
            cur = self._read_current()
            pos = cur.positions().get(job_id)
            if pos is None:
                return None
            text = cur.encoded_jobs()[pos]
        job: Job = json.loads(text)
        return job

    def update_jobs(self, ids: list[str], fn: Callable[[Job | None], T]) -> dict[str, T]:
        # Only the named jobs are decoded, changed and re-encoded; the others'
        # cached JSON is reused verbatim, so a claim costs O(named jobs) work
        # plus one file write.
        results: dict[str, T] = {}
        if not ids:
            return results  # nothing named: no lock, no write
        with self._locked():
            with self._mutex:
                cur = self._read_current()
                encoded = cur.encoded_jobs()
                where = cur.positions()
            changed: dict[int, tuple[Job, bytes]] = {}
            for job_id in ids:
                pos = where.get(job_id)
                if pos is None:
                    results[job_id] = fn(None)
                    continue
                job: Job = json.loads(changed[pos][1] if pos in changed else encoded[pos])
                results[job_id] = fn(job)
                text = _encode(job)
                if text != encoded[pos]:
                    changed[pos] = (job, text)
            if changed:
                jobs = list(cur.jobs)
                new_encoded = list(encoded)
                for pos, (job, text) in changed.items():
                    jobs[pos] = job
                    new_encoded[pos] = text
                due = None
                if cur.due is not None:
                    due = cur.due.with_changes([job for job, _ in changed.values()])
                self._write(jobs, new_encoded, index=where, due=due)
        return results

    def _write(
        self,
        jobs: list[Job],
        encoded: list[bytes],
        *,
        index: dict[str, int] | None = None,
        due: DueIndex | None = None,
    ) -> None:
        stamp = datetime.now(UTC).isoformat()
        # Assembled from per-job JSON so unchanged jobs are never re-encoded.
        data = b"".join(
            (
                f'{{"version":{STORE_VERSION},"jobs":['.encode(),
                b",".join(encoded),
                f'],"updated_at":{json.dumps(stamp)}}}\n'.encode(),
            )
        )
        written = _Cached((), jobs, encoded=encoded, index=index, due=due)
        with self._mutex:
            # Readers that see the new file before this write returns use
            # ``written`` instead of parsing it (see _read_current).
            self._pending = (len(data), data[-48:], written)
        try:
            self.write_bytes(self.path, data)
        finally:
            with self._mutex:
                self._pending = None
        with self._mutex:
            key = self._stat_key()
            self._cache = (
                _Cached(key, jobs, encoded=encoded, index=index, due=due)
                if key is not None
                else None
            )


_default_store: JobStore | None = None


def get_store() -> JobStore:
    """The process-wide store (the JSON file under the current ``CRONKIT_HOME``)."""
    global _default_store
    if _default_store is None:
        _default_store = JsonJobStore()
    return _default_store


def set_store(store: JobStore | None) -> None:
    """Install another backend for this process (``None`` restores the default)."""
    global _default_store
    _default_store = store
