"""The json store's in-memory picture of ``jobs.json``: job texts, the due index, the parse.

Split from :mod:`cron.stores.json` (which owns the file, the lock and the group
commit) so each module stays readable; nothing here touches the file system.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass
from datetime import datetime

from cron.claim import Job, wake_time

STORE_VERSION = 1


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


def encode_job(job: Job) -> bytes:
    # Bytes, so a write joins cached pieces without re-encoding the whole file.
    return json.dumps(job, separators=(",", ":")).encode("utf-8")


@dataclass
class Cached:
    """The file's contents as this process holds them: each job's compact JSON, indexed.

    No parsed job is kept: the text is the revision, a read decodes its own
    copy from it anyway, and holding both doubled a big store's memory
    (10,000 jobs: ~17 MB of dicts beside ~5 MB of text).
    """

    key: tuple[object, ...]
    encoded: list[bytes]  # file order; each job's revision
    ids: list[str]
    index: dict[str, int]  # id -> position
    keys: dict[str, str]  # declared ``key`` -> id
    due: DueIndex | None = None
    due_ttl: float | None = None

    @classmethod
    def of(cls, key: tuple[object, ...], jobs: list[Job], claim_ttl: float | None) -> Cached:
        """From parsed jobs (a file just read); the due index too, while they are at hand."""
        ids = [j["id"] for j in jobs]
        keys: dict[str, str] = {}
        for j in jobs:
            if j.get("key") is not None:
                keys.setdefault(str(j["key"]), j["id"])  # the first, as a scan finds it
        due = due_index(jobs, claim_ttl) if claim_ttl is not None else None
        return cls(
            key,
            [encode_job(j) for j in jobs],
            ids,
            {i: n for n, i in enumerate(ids)},
            keys,
            due,
            claim_ttl,
        )

    def encoded_jobs(self) -> list[bytes]:
        return self.encoded

    def positions(self) -> dict[str, int]:
        return self.index

    def due_index(self, claim_ttl: float) -> DueIndex:
        if self.due is None or self.due_ttl != claim_ttl:
            self.due = due_index([json.loads(t) for t in self.encoded], claim_ttl)
            self.due_ttl = claim_ttl
        return self.due

    def with_key(self, key: tuple[object, ...]) -> Cached:
        return Cached(key, self.encoded, self.ids, self.index, self.keys, self.due, self.due_ttl)


def drop_key(keys: dict[str, str], old: Job) -> None:
    key = old.get("key")
    if key is not None and keys.get(str(key)) == old.get("id"):
        del keys[str(key)]


_PREFIX = f'{{"version":{STORE_VERSION},"jobs":['
_TAIL_RE = re.compile(r',"updated_at":"[^"\\]*"\}\s*\Z')
_decoder = json.JSONDecoder()


def parse_lean(data: bytes, claim_ttl: float | None) -> Cached | None:
    """:class:`Cached` from a file exactly as :meth:`JsonJobStore._write` lays it out,
    decoding one job at a time; None for any other text (the caller parses it whole).

    Each job must be an object with a string ``id``, separated by bare commas;
    the revision kept is the job's compact encoding, as on the full path.
    """
    if not data.startswith(_PREFIX.encode()):
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    encoded: list[bytes] = []
    ids: list[str] = []
    keys: dict[str, str] = {}
    by_id: dict[str, tuple[datetime, str]] = {}
    i = len(_PREFIX)
    try:
        if text[i] == "]":
            i += 1
        else:
            while True:
                job, end = _decoder.raw_decode(text, i)
                if not isinstance(job, dict) or not isinstance(job.get("id"), str):
                    return None
                job_id = job["id"]
                encoded.append(encode_job(job))
                ids.append(job_id)
                if job.get("key") is not None:
                    keys.setdefault(str(job["key"]), job_id)  # the first, as a scan finds it
                if claim_ttl is not None:
                    t = wake_time(job, claim_ttl)
                    if t is not None:
                        by_id[job_id] = (t, job_id)
                sep = text[end]
                i = end + 1
                if sep == "]":
                    break
                if sep != ",":
                    return None
    except (ValueError, IndexError, RecursionError):
        return None
    if not _TAIL_RE.match(text, i):
        return None
    due = DueIndex(sorted(by_id.values()), by_id) if claim_ttl is not None else None
    return Cached(
        (), encoded, ids, {job_id: n for n, job_id in enumerate(ids)}, keys, due, claim_ttl
    )


__all__ = [
    "STORE_VERSION",
    "Cached",
    "DueIndex",
    "drop_key",
    "due_index",
    "encode_job",
    "parse_lean",
]
