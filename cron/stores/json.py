"""``jobs.json``: the embedded default store, one file holding every job (SPEC §1).

``{"version": 1, "jobs": [...], "updated_at": "<iso>"}``. Writes are atomic and
durable (``paths.atomic_write_bytes``). Every write holds ``flock`` on a sibling
``jobs.json.lock`` — a separate file, because the data file is replaced by
rename, which would silently detach a lock held on it. The wait is bounded by
``lock_timeout``; after it :class:`StoreLockTimeout` is raised.

A file that cannot be parsed raises :class:`StoreCorruptError` from every
operation and is never overwritten: the parse happens under the lock before
any write, and a failed parse aborts the write.

What makes a file behave like a row store lives here and nowhere above the
seam:

- a job's revision is its own compact JSON, so a compare-and-set on one job
  is "is this job's text unchanged", whichever other jobs changed meanwhile;
- parsed contents are cached on a cheap file fingerprint, with each job's
  encoded text, so a write re-encodes only the jobs it changed;
- a due index (wake time → id) is carried from write to write, so an idle
  tick costs a ``stat``;
- concurrent swaps from threads of this process share one durable write
  (group commit): a file write costs two ``fsync``\\ s whatever it carries.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cron import paths
from cron.claim import Job, wake_time
from cron.errors import DuplicateJobError, StoreCorruptError, StoreLockTimeout
from cron.groupcommit import GroupCommit, Pending
from cron.stores import JobStore, Stored, Swap

STORE_VERSION = 1
LOCK_TIMEOUT = 10.0


@dataclass(frozen=True)
class DueIndex:
    """Each active job's wake time, sorted: behind both ``next_wake`` and ``scan(due_by=)``."""

    entries: list[tuple[datetime, str]]
    by_id: dict[str, tuple[datetime, str]]

    def wake_at(self) -> datetime | None:
        return self.entries[0][0] if self.entries else None

    def due_ids(self, now: datetime) -> list[str]:
        cut = bisect.bisect_right(self.entries, (now, "\uffff"))
        return [job_id for _, job_id in self.entries[:cut]]

    def with_changes(self, changed: list[Job], removed: list[str], claim_ttl: float) -> DueIndex:
        """The index after ``changed`` jobs were rewritten: O(changed · log n), not a rebuild."""
        entries = list(self.entries)
        by_id = dict(self.by_id)
        for job_id in [j["id"] for j in changed] + removed:
            old = by_id.pop(job_id, None)
            if old is not None:
                del entries[bisect.bisect_left(entries, old)]
        for job in changed:
            t = wake_time(job, claim_ttl)
            if t is not None:
                bisect.insort(entries, (t, job["id"]))
                by_id[job["id"]] = (t, job["id"])
        return DueIndex(entries, by_id)


def due_index(jobs: list[Job], claim_ttl: float) -> DueIndex:
    """Index the active jobs by wake time (:func:`cron.claim.wake_time`)."""
    by_id: dict[str, tuple[datetime, str]] = {}
    for job in jobs:
        t = wake_time(job, claim_ttl)
        if t is not None:
            by_id[job["id"]] = (t, job["id"])
    return DueIndex(sorted(by_id.values()), by_id)


def _encode(job: Job) -> bytes:
    # Bytes, so a write joins cached pieces without re-encoding the whole file.
    return json.dumps(job, separators=(",", ":")).encode("utf-8")


@dataclass
class _Cached:
    key: tuple[object, ...]
    jobs: list[Job]
    # Built lazily: each job's compact JSON (its revision), id → position, the due index.
    encoded: list[bytes] | None = None
    index: dict[str, int] | None = None
    due: DueIndex | None = None
    due_ttl: float | None = None

    def encoded_jobs(self) -> list[bytes]:
        if self.encoded is None:
            self.encoded = [_encode(j) for j in self.jobs]
        return self.encoded

    def positions(self) -> dict[str, int]:
        if self.index is None:
            self.index = {j["id"]: i for i, j in enumerate(self.jobs)}
        return self.index

    def due_index(self, claim_ttl: float) -> DueIndex:
        if self.due is None or self.due_ttl != claim_ttl:
            self.due = due_index(self.jobs, claim_ttl)
            self.due_ttl = claim_ttl
        return self.due


@dataclass
class _Write(Pending):
    """One queued change: a swap (``rev`` compared), an insert, or a delete."""

    op: str  # swap | insert | delete
    job_id: str
    rev: object = None
    new: Job | None = None
    result: Stored | bool | None = None


class JsonJobStore(JobStore):
    """The ``jobs.json`` backend. ``path`` None = ``<home>/cron/jobs.json``, resolved per call."""

    def __init__(self, path: Path | None = None, *, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self._explicit = path
        self.lock_timeout = lock_timeout
        self._cache: _Cached | None = None
        # (size, last 48 bytes, contents) of the write in flight, if any.
        self._pending: tuple[int, bytes, _Cached] | None = None
        self._mutex = threading.Lock()
        self._thread_lock = threading.Lock()
        self._writes: GroupCommit[_Write] = GroupCommit(self._write_batch)
        # Tests use this seam to crash a write after the temp file exists.
        self.write_bytes: Callable[[Path, bytes], None] = paths.atomic_write_bytes

    @property
    def url(self) -> str:
        return "json" if self._explicit is None else f"json:{self._explicit}"

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

    def _read_current(self) -> _Cached:
        """Parse the file unless the cached copy is still current. Call with ``_mutex``."""
        for _ in range(5):
            key = self._stat_key()
            if key is None:
                return _Cached((), [])
            cached = self._cache
            if cached is not None and cached.key == key:
                return cached
            pending = self._pending
            if pending is not None and (key[3], key[4]) == pending[:2]:
                # Our own write, renamed into place but not yet finished (the
                # directory fsync): its contents are known, no parse needed.
                # Only this process can be writing now: it holds the lock.
                written = pending[2]
                done = _Cached(
                    key, written.jobs, written.encoded, written.index, written.due, written.due_ttl
                )
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

    def _current(self) -> _Cached:
        with self._mutex:
            return self._read_current()

    def get(self, job_id: str) -> Stored | None:
        # Decodes one job from the cached JSON instead of copying the whole store.
        with self._mutex:
            cur = self._read_current()
            pos = cur.positions().get(job_id)
            if pos is None:
                return None
            text = cur.encoded_jobs()[pos]
        return Stored(json.loads(text), text)

    def scan(self, *, due_by: datetime | None = None, limit: int | None = None) -> list[Stored]:
        with self._mutex:
            cur = self._read_current()
            encoded = cur.encoded_jobs()
            if due_by is None:
                texts = encoded if limit is None else encoded[:limit]
            else:
                where = cur.positions()
                ids = cur.due_index(self.claim_ttl).due_ids(due_by)
                if limit is not None:
                    ids = ids[:limit]
                texts = [encoded[where[i]] for i in ids]
        return [Stored(json.loads(t), t) for t in texts]

    def load(self) -> list[Job]:
        """Every job (private copies), in file order — a JSON-only convenience."""
        return [s.job for s in self.scan()]

    def next_wake(self) -> datetime | None:
        with self._mutex:
            return self._read_current().due_index(self.claim_ttl).wake_at()

    def count(self) -> int:
        return len(self._current().jobs)

    def find_key(self, key: str) -> Stored | None:
        with self._mutex:
            cur = self._read_current()
            for job, text in zip(cur.jobs, cur.encoded_jobs(), strict=True):
                if job.get("key") == key:
                    return Stored(json.loads(text), text)
        return None

    def info(self) -> dict[str, Any]:
        return {"backend": "json", "url": self.url, "location": str(self.path),
                "schema_version": STORE_VERSION, "jobs": self.count()}

    # -- writing -----------------------------------------------------------

    def insert(self, job: Job) -> Stored:
        req = self._writes.submit(_Write("insert", job["id"], new=job))
        assert isinstance(req.result, Stored)
        return req.result

    def insert_many(self, jobs: Sequence[Job]) -> list[Stored]:
        reqs = [_Write("insert", job["id"], new=job) for job in jobs]
        if reqs:
            self._writes.submit_many(reqs)
        for req in reqs:
            if req.failure is not None:
                raise req.failure
        return [r.result for r in reqs if isinstance(r.result, Stored)]

    def swap(self, job_id: str, rev: object, new: Job) -> Stored | None:
        if new.get("id") != job_id:
            raise ValueError(f"swap of job {job_id!r} got a job with id {new.get('id')!r}")
        result = self._writes.submit(_Write("swap", job_id, rev, new)).result
        return result if isinstance(result, Stored) else None

    def swap_many(self, swaps: Sequence[Swap]) -> list[Stored | None]:
        for s in swaps:
            if s.new.get("id") != s.job_id:  # as swap(): never store a job under another id
                raise ValueError(f"swap of job {s.job_id!r} got a job with id {s.new.get('id')!r}")
        # One file write for the batch; the rows follow it (a separate file: the ledger).
        reqs = [_Write("swap", s.job_id, s.rev, s.new) for s in swaps]
        if not reqs:
            return []
        self._writes.submit_many(reqs)
        out = [r.result if isinstance(r.result, Stored) else None for r in reqs]
        rows = [row for s, won in zip(swaps, out, strict=True) if won is not None for row in s.rows]
        if rows:
            self.write_rows(rows)
        return out

    def delete(self, job_id: str, rev: object | None = None) -> bool:
        return self._writes.submit(_Write("delete", job_id, rev)).result is True

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

    def _write_batch(self, batch: list[_Write]) -> None:
        """Apply queued changes in arrival order, under the lock, in ONE durable write.

        Two swaps of one revision in one batch behave as across batches: the
        first changes the job's text, so the second compares unequal and loses.
        Nothing is written when no change applies.
        """
        with self._locked():
            with self._mutex:
                cur = self._read_current()
                encoded = cur.encoded_jobs()
                where = cur.positions()
            jobs = list(cur.jobs)
            new_encoded = list(encoded)
            positions = dict(where)
            changed: dict[str, Job] = {}
            removed: list[str] = []
            for req in batch:
                pos = positions.get(req.job_id)
                if req.op == "insert":
                    assert req.new is not None
                    if pos is not None:
                        req.failure = DuplicateJobError("id", req.job_id)
                        continue
                    key = req.new.get("key")
                    if key is not None and any(j.get("key") == key for j in jobs):
                        req.failure = DuplicateJobError("key", str(key))
                        continue
                    text = _encode(req.new)
                    positions[req.job_id] = len(jobs)
                    jobs.append(json.loads(text))
                    new_encoded.append(text)
                    changed[req.job_id] = jobs[-1]
                    req.result = Stored(json.loads(text), text)
                    continue
                if pos is None or (req.rev is not None and new_encoded[pos] != req.rev):
                    req.result = None if req.op == "swap" else False
                    continue
                if req.op == "delete":
                    del jobs[pos]
                    del new_encoded[pos]
                    positions = {j["id"]: i for i, j in enumerate(jobs)}
                    changed.pop(req.job_id, None)
                    removed.append(req.job_id)
                    req.result = True
                    continue
                assert req.new is not None
                text = _encode(req.new)
                jobs[pos] = json.loads(text)
                new_encoded[pos] = text
                changed[req.job_id] = jobs[pos]
                req.result = Stored(req.new, text)  # the caller's own dict; we keep a parse
            if not changed and not removed:
                return
            due = None
            ttl = self.claim_ttl
            if cur.due is not None and cur.due_ttl == ttl:
                due = cur.due.with_changes(list(changed.values()), removed, ttl)
            self._write(jobs, new_encoded, index=positions, due=due, due_ttl=ttl)

    def _write(
        self,
        jobs: list[Job],
        encoded: list[bytes],
        *,
        index: dict[str, int] | None = None,
        due: DueIndex | None = None,
        due_ttl: float | None = None,
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
        written = _Cached((), jobs, encoded=encoded, index=index, due=due, due_ttl=due_ttl)
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
                _Cached(key, jobs, encoded=encoded, index=index, due=due, due_ttl=due_ttl)
                if key is not None
                else None
            )
