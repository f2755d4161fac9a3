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
from cron.claim import Job
from cron.errors import DuplicateJobError, StoreCorruptError, StoreLockTimeout
from cron.groupcommit import GroupCommit, Pending
from cron.stores import JobStore, Stored, Swap
from cron.stores._jsoncache import (
    STORE_VERSION,
    Cached,
    drop_key,
    encode_job,
    parse_lean,
)

LOCK_TIMEOUT = 10.0


@dataclass
class _Write(Pending):
    """One queued change: a swap (``rev`` compared), an insert, or a delete."""

    op: str  # swap | insert | delete
    job_id: str
    rev: object = None
    new: Job | None = None
    result: Stored | bool | None = None
    after: _Write | None = None
    """An insert of one ``insert_many`` applies only if the one before it did."""


class JsonJobStore(JobStore):
    """The ``jobs.json`` backend. ``path`` None = ``<home>/cron/jobs.json``, resolved per call."""

    def __init__(self, path: Path | None = None, *, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self._explicit = path
        self.lock_timeout = lock_timeout
        self._cache: Cached | None = None
        # (size, last 48 bytes, contents) of the write in flight, if any.
        self._pending: tuple[int, bytes, Cached] | None = None
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

    def _parse(self, data: bytes) -> Cached:
        """The file's contents (key not set yet): the one place a store file is parsed.

        A file in the exact shape :meth:`_write` produces is decoded one job at
        a time, each job's dict dropped once its text and index entries are
        taken: the whole file is never held parsed (10,000 jobs: ~17 MB of
        dicts whose freed memory a long-lived process keeps). Anything else —
        another writer's layout, a broken file — goes through one full parse,
        which also names what is wrong.
        """
        ttl = self._ttl_or_none()
        lean = parse_lean(data, ttl)
        if lean is not None:
            return lean
        return Cached.of((), self._parse_full(data), ttl)

    def _parse_full(self, data: bytes) -> list[Job]:
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

    def _read_current(self) -> Cached:
        """Parse the file unless the cached copy is still current. Call with ``_mutex``."""
        for _ in range(5):
            key = self._stat_key()
            if key is None:
                return Cached.of((), [], self._ttl_or_none())
            cached = self._cache
            if cached is not None and cached.key == key:
                return cached
            pending = self._pending
            if pending is not None and (key[3], key[4]) == pending[:2]:
                # Our own write, renamed into place but not yet finished (the
                # directory fsync): its contents are known, no parse needed.
                # Only this process can be writing now: it holds the lock.
                done = pending[2].with_key(key)
                self._cache = done
                return done
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                continue
            # Only cache when the file did not change while we read it.
            if self._stat_key() != key:
                continue
            parsed = self._parse(data).with_key(key)
            del data
            self._cache = parsed
            return parsed
        data = self.path.read_bytes()
        return self._parse(data)

    def _ttl_or_none(self) -> float | None:
        # The due index is built with the parse when the claim ttl can be known;
        # a broken config leaves it to the first reader that needs it.
        try:
            return self.claim_ttl
        except Exception:
            return None

    def _current(self) -> Cached:
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
        return len(self._current().encoded)

    def find_key(self, key: str) -> Stored | None:
        with self._mutex:
            cur = self._read_current()
            job_id = cur.keys.get(key)
            if job_id is None:
                return None
            text = cur.encoded[cur.index[job_id]]
        return Stored(json.loads(text), text)

    def info(self) -> dict[str, Any]:
        return {
            "backend": "json",
            "url": self.url,
            "location": str(self.path),
            "schema_version": STORE_VERSION,
            "jobs": self.count(),
        }

    # -- writing -----------------------------------------------------------

    def insert(self, job: Job) -> Stored:
        req = self._writes.submit(_Write("insert", job["id"], new=job))
        assert isinstance(req.result, Stored)
        return req.result

    def insert_many(self, jobs: Sequence[Job]) -> list[Stored]:
        reqs: list[_Write] = []
        for job in jobs:
            reqs.append(_Write("insert", job["id"], new=job, after=reqs[-1] if reqs else None))
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
            new_encoded = list(cur.encoded)
            ids = list(cur.ids)
            positions = dict(cur.index)
            keys = dict(cur.keys)
            changed: dict[str, Job] = {}
            removed: list[str] = []
            for req in batch:
                pos = positions.get(req.job_id)
                if req.op == "insert":
                    assert req.new is not None
                    if req.after is not None and not isinstance(req.after.result, Stored):
                        continue  # an earlier insert of its batch failed: stop there
                    if pos is not None:
                        req.failure = DuplicateJobError("id", req.job_id)
                        continue
                    key = req.new.get("key")
                    if key is not None and str(key) in keys:
                        req.failure = DuplicateJobError("key", str(key))
                        continue
                    text = encode_job(req.new)
                    positions[req.job_id] = len(new_encoded)
                    new_encoded.append(text)
                    ids.append(req.job_id)
                    if key is not None:
                        keys[str(key)] = req.job_id
                    changed[req.job_id] = req.new  # only read below, before we return
                    req.result = Stored(json.loads(text), text)
                    continue
                # A swap compares its revision always (None is not one); a delete
                # without a revision is unconditional.
                if pos is None or (
                    (req.rev is not None or req.op == "swap") and new_encoded[pos] != req.rev
                ):
                    req.result = None if req.op == "swap" else False
                    continue
                if req.op == "delete":
                    drop_key(keys, json.loads(new_encoded[pos]))
                    del new_encoded[pos]
                    del ids[pos]
                    positions = {job_id: i for i, job_id in enumerate(ids)}
                    changed.pop(req.job_id, None)
                    removed.append(req.job_id)
                    req.result = True
                    continue
                assert req.new is not None
                text = encode_job(req.new)
                if b'"key":' in new_encoded[pos]:
                    drop_key(keys, json.loads(new_encoded[pos]))
                key = req.new.get("key")
                if key is not None:
                    keys[str(key)] = req.job_id
                new_encoded[pos] = text
                changed[req.job_id] = req.new  # only read below (the due index), before we return
                req.result = Stored(req.new, text)  # the caller's own dict; we keep its text
            if not changed and not removed:
                return
            due = None
            ttl = self.claim_ttl
            if cur.due is not None and cur.due_ttl == ttl:
                due = cur.due.with_changes(list(changed.values()), removed, ttl)
            self._write(
                Cached((), new_encoded, ids, positions, keys, due, ttl if due is not None else None)
            )

    def _write(self, contents: Cached) -> None:
        stamp = datetime.now(UTC).isoformat()
        # Assembled from per-job JSON so unchanged jobs are never re-encoded.
        data = b"".join(
            (
                f'{{"version":{STORE_VERSION},"jobs":['.encode(),
                b",".join(contents.encoded),
                f'],"updated_at":{json.dumps(stamp)}}}\n'.encode(),
            )
        )
        with self._mutex:
            # Readers that see the new file before this write returns use
            # ``contents`` instead of parsing it (see _read_current).
            self._pending = (len(data), data[-48:], contents)
        try:
            self.write_bytes(self.path, data)
        finally:
            with self._mutex:
                self._pending = None
        del data
        with self._mutex:
            key = self._stat_key()
            self._cache = contents.with_key(key) if key is not None else None
