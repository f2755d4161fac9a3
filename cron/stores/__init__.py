"""Axis A: where jobs live. ``JobStore`` is the seam every backend implements.

The seam is shaped like a database, not like a file: it hands out and accepts
one job at a time, each with an opaque *revision*, and its one write primitive
is a compare-and-set on one job. The at-most-once rules (``cron.claim``) are
pure functions over a job dict; ``cron.jobs`` reads a job, applies a rule to a
copy and swaps it back. Whatever a backend caches or batches stays inside it.

Backends are chosen by URL (SPEC §10) with :func:`open_store`:

=========================  ==============================================
``""`` / ``json``          ``<home>/cron/jobs.json`` (:mod:`cron.stores.json`)
``json:<abs path>``        that JSON file
``sqlite``                 ``<home>/cron/cronkit.db`` (:mod:`cron.stores.sqlite`)
``sqlite:///<abs path>``   that SQLite file
``postgresql://...``       a PostgreSQL database (:mod:`cron.stores.postgres`;
                           also ``postgres://``; needs the ``postgres`` extra)
``<scheme>:...``           a store registered under the entry-point group
                           ``cronkit.stores`` by that scheme
=========================  ==============================================

A third-party backend subclasses :class:`JobStore`, registers its scheme
(``register_store`` or the entry point) and subclasses
``cron.testing.store.StoreContract`` to prove it keeps the contract.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cron import ledger_sql
from cron.claim import Job, wake_time
from cron.errors import StoreConfigError
from cron.ledger_sql import LedgerRow
from cron.ledgerdb import LedgerDB, SqliteLedger
from cron.urls import mask_url

__all__ = [
    "JobStore",
    "LedgerRow",
    "Replay",
    "Stored",
    "Swap",
    "mask_url",
    "open_store",
    "register_store",
]


@dataclass(frozen=True)
class Stored:
    """A job as read from a store, with the revision a later :meth:`JobStore.swap` compares.

    ``job`` is the caller's own copy: changing it changes nothing stored.
    ``rev`` is opaque; only its equality with a later read means "unchanged".
    """

    job: Job
    rev: object


@dataclass(frozen=True)
class Swap:
    """One compare-and-set of :meth:`JobStore.swap_many`: replace ``job_id`` at ``rev`` by ``new``.

    ``rows`` are written to the ledger only if this swap wins — in the same
    transaction on a backend whose ledger lives beside its jobs.
    """

    job_id: str
    rev: object
    new: Job
    rows: tuple[LedgerRow, ...] = field(default=())


@dataclass(frozen=True)
class Replay:
    """A signed webhook request's replay record entry (SPEC §7): its signature ``digest``,
    seen at ``at`` (epoch seconds), remembered for ``ttl`` seconds."""

    digest: str
    at: float
    ttl: float


class JobStore(ABC):
    """Where jobs live. Each method's docstring is its contract.

    Required (abstract): :meth:`get`, :meth:`scan`, :meth:`insert`,
    :meth:`swap`, :meth:`delete`, :attr:`url`.

    Optional, with correct defaults: :meth:`swap_many` (a loop of
    :meth:`swap`), :meth:`swap_many_unless_replayed`, :meth:`insert_many`,
    :meth:`next_wake` (the minimum over :meth:`scan`),
    :meth:`version` (``None``: unknown), :meth:`count`, :meth:`find_key`,
    :meth:`ledger`, :meth:`replay_db`, :meth:`write_rows`, :meth:`clock`,
    :meth:`info`, :meth:`close`.

    Every read returns private copies; every write is atomic and durable
    before it returns. A job's *wake time* (:func:`cron.claim.wake_time`) is
    when a tick must next look at it; backends index it.
    """

    _claim_ttl: float | None = None
    _ledger: LedgerDB | None = None
    _replay: LedgerDB | None = None
    shared: bool = False
    """True when other machines may use this store too (a database server): ``status``
    then lists every registered ticker node (SPEC §12)."""

    @property
    def claim_ttl(self) -> float:
        """Seconds a claim stays live (``cron.claim_ttl`` unless set on the store).

        Stores use it to index when a spent job's final claim goes stale.
        """
        if self._claim_ttl is not None:
            return self._claim_ttl
        from cron.config import cfg_get, read_config

        try:
            return float(cfg_get(read_config(), "cron", "claim_ttl", default=300))
        except ValueError:
            return 300.0

    @claim_ttl.setter
    def claim_ttl(self, value: float | None) -> None:
        self._claim_ttl = value

    @property
    @abstractmethod
    def url(self) -> str:
        """The store's URL as a user would configure it (a password is never shown)."""

    @abstractmethod
    def get(self, job_id: str) -> Stored | None:
        """The job with this id and its current revision, or None."""

    @abstractmethod
    def scan(self, *, due_by: datetime | None = None, limit: int | None = None) -> list[Stored]:
        """Jobs in creation order; with ``due_by``, only those a tick at ``due_by`` must look at.

        With ``due_by``: every job whose wake time is ``<= due_by`` (a superset
        is allowed), ordered by wake time. It must use an index: an idle tick
        may not cost O(jobs). ``limit`` caps the number returned.
        """

    @abstractmethod
    def insert(self, job: Job) -> Stored:
        """Add a new job. Raises :class:`cron.errors.DuplicateJobError` if its id (or its
        ``key``, when set) is already stored: an insert never overwrites."""

    @abstractmethod
    def swap(self, job_id: str, rev: object, new: Job) -> Stored | None:
        """Replace the job only if its stored revision is still ``rev``; None = lost.

        Of N callers racing to swap one revision — threads, processes or
        machines — exactly one wins; the others get None and change nothing.
        ``new["id"]`` must equal ``job_id``. The store keeps no reference to
        ``new``: the caller may go on using it (the returned ``Stored.job`` may
        be ``new`` itself).
        """

    @abstractmethod
    def delete(self, job_id: str, rev: object | None = None) -> bool:
        """Remove the job (only at revision ``rev`` if given); True if it was removed."""

    # -- optional, correct defaults ------------------------------------------------

    def swap_many(self, swaps: Sequence[Swap]) -> list[Stored | None]:
        """:meth:`swap` for each item, with each item's ``rows`` written iff it won.

        Default: a loop of :meth:`swap` then :meth:`write_rows`. Note for
        implementers: the default is correct but writes once per job and
        writes the rows *after* the swap (a crash in between leaves a claim
        without its ledger row); a backend with transactions should do the
        whole batch, rows included, in one.
        """
        out: list[Stored | None] = []
        for item in swaps:
            won = self.swap(item.job_id, item.rev, item.new)
            if won is not None and item.rows:
                self.write_rows(list(item.rows))
            out.append(won)
        return out

    def swap_many_unless_replayed(
        self, replay: Replay, swaps: Sequence[Swap]
    ) -> list[Stored | None] | None:
        """Record ``replay`` in :meth:`replay_db`; then, only if it was new, :meth:`swap_many`.

        Returns None — and swaps nothing — when ``replay.digest`` is already
        recorded and not expired (a replayed request); of any number of callers
        carrying one digest, threads, processes or nodes, exactly one gets a
        list. ``swaps`` may be empty (record only). The record is durable
        before anything is swapped.

        Default: one :meth:`replay_db` transaction (shared with concurrent
        callers of this process), then :meth:`swap_many`. Note for
        implementers: a store whose replay record lives in its own database
        can commit the record, the swaps and their rows in one transaction.
        """
        fresh = self.replay_db().transact(
            lambda conn: ledger_sql.remember_nonce(
                conn, replay.digest, at=replay.at, ttl=replay.ttl
            )
        )
        if not fresh:
            return None
        return self.swap_many(swaps) if swaps else []

    def insert_many(self, jobs: Sequence[Job]) -> list[Stored]:
        """:meth:`insert` for each job; if any insert fails, those before it are kept.

        Default: a loop. Note for implementers: bulk loads (``cronkit store
        copy``, benchmarks) go through here; one write for the batch is much
        cheaper.
        """
        return [self.insert(job) for job in jobs]

    def write_rows(self, rows: list[LedgerRow]) -> None:
        """Write ledger rows outside a swap, in one transaction of :meth:`ledger`."""
        self.ledger().transact(
            lambda conn: ledger_sql.insert_rows(conn, rows, ledger_sql.KEEP_PER_JOB)
        )

    def next_wake(self) -> datetime | None:
        """The earliest wake time over every job, or None. Default: a full :meth:`scan`.

        Note for implementers: override it with an indexed ``min``; the ticker
        asks after every tick.
        """
        times = [t for t in (wake_time(s.job, self.claim_ttl) for s in self.scan()) if t]
        return min(times) if times else None

    def version(self) -> object | None:
        """A cheap value that changes whenever any job changes; None = unknown (poll)."""
        return None

    def count(self) -> int:
        """How many jobs are stored. Default: ``len(scan())``."""
        return len(self.scan())

    def find_key(self, key: str) -> Stored | None:
        """The job whose ``key`` field is ``key``, or None. Default: a full :meth:`scan`."""
        for stored in self.scan():
            if stored.job.get("key") == key:
                return stored
        return None

    def ledger(self) -> LedgerDB:
        """The database of this store's run ledger, job events and ticker registry (SPEC §5, §10).

        Default: ``<home>/cron/executions.db`` (SQLite). Note for implementers:
        a database store returns its own database, so a claim and its ledger
        row can commit together (:meth:`swap_many`).
        """
        if self._ledger is None:
            from cron import paths

            self._ledger = SqliteLedger(
                paths.executions_path, ledger_sql.SCHEMA, migrate=ledger_sql.migrate
            )
        return self._ledger

    def replay_db(self) -> LedgerDB:
        """Where the webhook keeps signatures it accepted (SPEC §7). Default:
        ``<home>/cron/webhook_nonces.db``, fsynced on every commit. A database
        store returns its :meth:`ledger`, so a replay to another node is refused too."""
        if self._replay is None:
            from cron import paths

            self._replay = SqliteLedger(
                lambda: paths.cron_dir() / "webhook_nonces.db",
                ledger_sql.NONCE_SCHEMA,
                synchronous="FULL",
            )
        return self._replay

    def ledger_path(self) -> Path:
        """The SQLite file of :meth:`ledger` (kept for tools that open it; a store whose
        ledger is not a file raises ``NotImplementedError``)."""
        ledger = self.ledger()
        if not isinstance(ledger, SqliteLedger):
            raise NotImplementedError(f"{self.url}: the ledger is not a file")
        return ledger.path

    def clock(self) -> datetime:
        """Now, by the clock claims are judged by (SPEC §11). Default: this machine's.

        Note for implementers: a store shared by several machines returns its
        server's clock, so node clocks may drift without a double fire.
        """
        return datetime.now(UTC)

    def info(self) -> dict[str, Any]:
        """What ``cronkit store info`` shows: backend, location, schema version, job count."""
        return {
            "backend": type(self).__name__,
            "url": self.url,
            "schema_version": None,
            "jobs": self.count(),
        }

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (from any thread) when another process may have changed jobs.

        Default: nothing; the ticker polls :meth:`version`. A hint, never a guarantee.
        """
        return None

    def unsubscribe(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback`` (one passed to :meth:`subscribe`). Default: nothing."""
        return None

    def close(self) -> None:
        """Release connections and threads (this thread's ledger connections, by default)."""
        for db in (self._ledger, self._replay):
            if db is not None:
                db.close()


# -- URLs and the registry ---------------------------------------------------------

Factory = Callable[[str], JobStore]
_registry: dict[str, Factory] = {}
_registry_lock = threading.Lock()
_entry_points_loaded = False


def register_store(scheme: str, factory: Factory) -> None:
    """Make ``open_store`` open URLs of ``scheme`` with ``factory(url)``."""
    with _registry_lock:
        _registry[scheme.lower()] = factory


def _json_factory(url: str) -> JobStore:
    from cron.stores.json import JsonJobStore

    if url in ("", "json"):
        return JsonJobStore()
    # ``json:<absolute path>`` is what ``JsonJobStore(path).url`` reports: it must
    # open that file, never the home's jobs.json.
    path = url.partition(":")[2]
    if not path.startswith("/"):
        raise StoreConfigError(url, "expected 'json' or 'json:<absolute path>'")
    return JsonJobStore(Path(path))


def _sqlite_factory(url: str) -> JobStore:
    from cron.stores.sqlite import SqliteJobStore

    base, _, query = url.partition("?")
    options = dict(part.partition("=")[::2] for part in query.split("&") if part)
    sync = options.pop("synchronous", "normal").upper()
    if options or sync not in ("NORMAL", "FULL"):
        raise StoreConfigError(url, "the only option is ?synchronous=normal|full")
    if base == "sqlite":
        return SqliteJobStore(synchronous=sync)
    parts = urlsplit(base)
    if parts.netloc or not parts.path.startswith("/") or not base.startswith("sqlite:///"):
        raise StoreConfigError(
            url, "expected 'sqlite' or 'sqlite:///<absolute path>' (three slashes)"
        )
    return SqliteJobStore(Path(parts.path), synchronous=sync)


def _postgres_factory(url: str) -> JobStore:
    try:
        from cron.stores.postgres import PostgresJobStore
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] not in ("psycopg", "psycopg_pool"):
            raise
        raise StoreConfigError(
            url, "needs the postgres extra: pip install 'cronkit[postgres]'"
        ) from None
    store = PostgresJobStore(url)
    store.check()  # unreachable or too new: an error at open, never a silent later one
    return store


register_store("json", _json_factory)
register_store("sqlite", _sqlite_factory)
register_store("postgresql", _postgres_factory)
register_store("postgres", _postgres_factory)


def _factory_for(scheme: str, url: str) -> Factory:
    global _entry_points_loaded
    with _registry_lock:
        found = _registry.get(scheme)
        if found is not None:
            return found
        if not _entry_points_loaded:
            _entry_points_loaded = True
            for ep in entry_points(group="cronkit.stores"):
                _registry.setdefault(ep.name.lower(), _lazy(ep))
        found = _registry.get(scheme)
        if found is not None:
            return found
        known = ", ".join(sorted(_registry))
    raise StoreConfigError(url, f"unknown store scheme {scheme!r} (known: {known})")


def _lazy(ep: Any) -> Factory:
    def factory(url: str) -> JobStore:
        try:
            cls = ep.load()
        except Exception as exc:
            raise StoreConfigError(
                url, f"the store plugin {ep.value!r} failed to import: {exc}"
            ) from None
        store = cls(url)
        if not isinstance(store, JobStore):
            raise StoreConfigError(url, f"{ep.value!r} did not make a cron.stores.JobStore")
        return store

    return factory


_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def scheme_of(url: str) -> str:
    """The scheme of a store URL: ``json`` for ``""``; raises for a malformed one."""
    text = url.strip()
    if text in ("", "json"):
        return "json"
    if text == "sqlite" or text.startswith("sqlite?"):
        return "sqlite"
    m = _SCHEME_RE.match(text)
    if m is None:
        raise StoreConfigError(
            url,
            "expected 'json', 'sqlite', 'sqlite:///<path>' or a "
            "'<scheme>:...' URL such as 'postgresql://host/db'",
        )
    scheme = m.group(1).lower()
    return "postgresql" if scheme == "postgres" else scheme


def open_store(url: str) -> JobStore:
    """Open the store named by ``url`` (SPEC §10). Never falls back to another store.

    Raises :class:`cron.errors.StoreConfigError` (a ``ValueError``) naming the
    URL, password masked, for an unknown scheme or a malformed URL; a backend
    raises it too when its database cannot be reached or has a newer schema.
    """
    text = url.strip()
    return _factory_for(scheme_of(text), text)(text)
