"""The claim protocol on the store (SPEC §3): who runs which slot, and what a run left.

:func:`claim_job_for_fire` (and its batch form for the tick, :func:`claim_due_jobs`)
hands a due slot to exactly one caller; :func:`mark_job_run` records the result only
while the caller's token still holds the claim; :func:`refresh_claims` keeps a running
job's claim live; :func:`claim_retry` passes it to the next attempt of a failed slot.
Each is a compare-and-set of the pure rules in :mod:`cron.claim` on the store's copy;
the ledger rows a claim writes ride on the same swap.

Callers reach these through :mod:`cron.jobs` (``jobs.claim_job_for_fire_ex(...)``), the
name tests patch.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime

from cron import claim as rules
from cron import metrics
from cron.config import cfg_get, read_config
from cron.job_core import CAS_ATTEMPTS, _notify_changed, _now, get_job, json_copy
from cron.ledger_sql import LedgerRow
from cron.procinfo import owner_id
from cron.schedule import to_iso
from cron.store import Job, JobStore, Stored, Swap, get_store
from cron.stores import Replay


def _event_rows(events: list[rules.LedgerEvent], source: str, at: str) -> list[LedgerRow]:
    owner = owner_id()
    return [
        LedgerRow(
            secrets.token_hex(16),
            ev.job_id,
            ev.status,
            ev.scheduled_at,
            at,
            source,
            owner,
            ev.job_name,
            ev.error,
        )
        for ev in events
    ]


def _claim_row(job: Job, token: str, source: str, at: str) -> LedgerRow:
    claim = job["fire_claim"]
    return LedgerRow(
        token, job["id"], "claimed", claim["scheduled_at"], at, source, claim["by"], job.get("name")
    )


def claim_job_for_fire(
    job_id: str,
    *,
    scheduled_at: datetime | str | None = None,
    now: datetime | None = None,
    force: bool = False,
    source: str = "manual",
) -> str | None:
    """Give one due slot of ``job_id`` to exactly one caller: a compare-and-set on the job.

    Returns a fresh claim token to the single winner and ``None`` to every
    other caller — threads, processes or machines sharing the store. ``None``
    is returned, and nothing in the store changes, when:

    1. the job is missing or ``completed``;
    2. the job is paused/disabled and ``force`` is False (``force`` runs it
       once and it stays paused);
    3. the job holds a live ``fire_claim`` (age in ``[0, claim_ttl)``; a claim
       dated in the future is stale). Running jobs refresh their claim at
       least every ``claim_ttl / 3``, so only a crashed run goes stale;
    4. without ``force``: the job is not due (``next_run_at > now``), or
       ``scheduled_at`` is earlier than ``next_run_at`` (a duplicate or stale
       fire) or later than ``now``; or the slot is later than its grace and
       the job's ``catch_up`` is ``skip`` (a one-shot: more than 120 s late) —
       the ticker records those as ``missed``.

    On success, in one store write: ``fire_claim`` is stamped (``token``,
    ``at``, ``by`` = ``host:pid:start``, ``scheduled_at``), the fired slot is
    recorded in ``last_scheduled_at``, ``repeat.completed`` is incremented and
    ``next_run_at`` advances to the first slot strictly after ``now`` (null
    once spent). Advancing before the run means a crash mid-run loses at most
    one run and never repeats one. A ``scheduled_at`` later than
    ``next_run_at`` but not after ``now`` claims that slot and the slots passed
    over are recorded ``missed`` in the ledger. The ledger row (id = token,
    status ``claimed``, ``source``) rides on the same swap: on a database
    store it commits in the same transaction.

    How: read the job and its revision, apply :func:`cron.claim.try_claim` to
    the copy, swap it back only if the revision is unchanged. A caller whose
    swap loses re-reads and applies the rule to what the winner wrote — where
    it finds the winner's live claim and gets None.
    """
    return claim_job_for_fire_ex(
        job_id, scheduled_at=scheduled_at, now=now, force=force, source=source
    ).token


def _claim_settings() -> tuple[float, str]:
    cfg = read_config()
    return (
        float(cfg_get(cfg, "cron", "claim_ttl", default=300)),
        str(cfg_get(cfg, "cron", "catch_up", default="once")),
    )


def claim_job_for_fire_ex(
    job_id: str,
    *,
    scheduled_at: datetime | str | None = None,
    now: datetime | None = None,
    force: bool = False,
    source: str = "manual",
) -> rules.ClaimOutcome:
    """:func:`claim_job_for_fire`, returning the outcome with its reason (``outcome.code``)."""
    outcome = _claim_one(
        job_id, scheduled_at=scheduled_at, now=now, force=force, source=source, replay=None
    )
    assert outcome is not None  # only a replay record can refuse
    return outcome


def claim_signed_fire(
    job_id: str,
    replay: Replay,
    *,
    scheduled_at: datetime | str | None = None,
    now: datetime | None = None,
    source: str = "webhook",
) -> rules.ClaimOutcome | None:
    """:func:`claim_job_for_fire_ex` for a signed webhook request, refusing a replay.

    Returns None when ``replay.digest`` is already recorded and live (a
    replayed request): nothing changes and nothing is claimed. Otherwise the
    digest is recorded — also when the claim is lost, so a request refused
    now cannot be replayed into a later slot — and the claim's outcome is
    returned. Of any number of requests carrying one digest, at most one is
    ever claimed. The record, the claim and its ledger rows are written by
    one :meth:`~cron.stores.JobStore.swap_many_unless_replayed` (one
    transaction on a SQLite store).
    """
    return _claim_one(
        job_id, scheduled_at=scheduled_at, now=now, force=False, source=source, replay=replay
    )


def _claim_one(
    job_id: str,
    *,
    scheduled_at: datetime | str | None,
    now: datetime | None,
    force: bool,
    source: str,
    replay: Replay | None,
) -> rules.ClaimOutcome | None:
    at = _now(now)
    slot: datetime | None
    if isinstance(scheduled_at, str):
        slot = rules.parse_ts(scheduled_at)
    else:
        slot = _now(scheduled_at) if scheduled_at is not None else None
    ttl, catch_default = _claim_settings()
    owner = owner_id()
    stamp = to_iso(at)
    store = get_store()
    for _ in range(CAS_ATTEMPTS):
        stored = store.get(job_id)
        job = stored.job if stored is not None else None
        outcome = rules.try_claim(
            job,
            now=at,
            claim_ttl=ttl,
            catch_up_default=catch_default,
            owner=owner,
            scheduled_at=slot,
            force=force,
        )
        if not outcome.won or stored is None or job is None:
            if replay is not None and store.swap_many_unless_replayed(replay, []) is None:
                return None
            if stored is not None:
                metrics.observe_claim_lost(job_id)
            return outcome
        assert outcome.token is not None
        rows = (
            _claim_row(job, outcome.token, source, stamp),
            *_event_rows(outcome.events, source, stamp),
        )
        swaps = [Swap(job_id, stored.rev, job, rows)]
        if replay is None:
            results = store.swap_many(swaps)
        else:
            got = store.swap_many_unless_replayed(replay, swaps)
            if got is None:
                return None
            results = got
            replay = None  # recorded: a retry after a lost swap is a plain claim
        if results[0] is not None:
            metrics.observe_rows(rows)
            return outcome
    raise TimeoutError(f"job {job_id!r}: {CAS_ATTEMPTS} writers in a row changed it first")


# What sweep_due returns when it left the job as it was (see cron.claim.sweep_due).
_SWEEP_UNCHANGED = frozenset(
    {rules.ClaimReason.NOT_SCHEDULED, rules.ClaimReason.NO_NEXT_RUN, rules.ClaimReason.NOT_DUE}
)


def _sweep(
    stored: Stored,
    *,
    at: datetime,
    ttl: float,
    catch_default: str,
    owner: str,
    source: str,
) -> tuple[Swap | None, str | None, bool]:
    """The tick's rule for one job: ``(swap to make or None, token if fired, completed?)``."""
    job = stored.job
    was = job.get("state")
    outcome = rules.sweep_due(
        job, now=at, claim_ttl=ttl, catch_up_default=catch_default, owner=owner
    )
    if outcome.code in _SWEEP_UNCHANGED:
        return None, None, False
    stamp = to_iso(at)
    rows = _event_rows(outcome.events, source, stamp)
    if outcome.token is not None:
        rows.insert(0, _claim_row(job, outcome.token, source, stamp))
    completed = was != "completed" and job.get("state") == "completed"
    return Swap(job["id"], stored.rev, job, tuple(rows)), outcome.token, completed


def claim_due_jobs(
    now: datetime | None = None,
    *,
    source: str = "tick",
    prefetched: tuple[datetime, Sequence[Stored]] | None = None,
) -> list[tuple[Job, str]]:
    """The tick's batch claim: :func:`claim_job_for_fire` semantics for every due job.

    Applies :func:`cron.claim.sweep_due` to each job the store lists as due
    (fire, overlap → ``skipped``, beyond grace → ``missed`` or fire once,
    one-shot 120 s) and writes every change with one ``swap_many`` — one file
    write on json, one transaction on a database, the ledger rows included.
    A job whose swap lost (another node or writer changed it first) is read
    again and swept again. Returns ``(job, token)`` for each job this caller
    must run; the job dict carries its claim.

    ``prefetched``: ``(by, rows)``, the store's due list for ``by`` read
    earlier (the ticker reads it just before the slot, see
    :meth:`cron.runtime.Runtime.prefetch_due`), swept instead of a new read
    when this claim's time is at or after ``by``. A stale row is safe — its
    swap loses and it is read again — but a job missing from the rows is not
    claimed by this call; the caller's next look at ``next_wake`` finds it.
    """
    at = _now(now)
    store = get_store()
    if prefetched is not None and prefetched[0] <= at:
        candidates = list(prefetched[1])
    else:
        wake = store.next_wake()
        if wake is None or wake > at:
            return []  # idle: nothing can be due; one indexed look, no lock
        candidates = store.scan(due_by=at)
    ttl, catch_default = _claim_settings()
    owner = owner_id()
    won: list[tuple[Job, str]] = []
    completed = False
    for _ in range(CAS_ATTEMPTS):
        planned = [
            _sweep(s, at=at, ttl=ttl, catch_default=catch_default, owner=owner, source=source)
            for s in candidates
        ]
        todo = [(swap, token, done) for swap, token, done in planned if swap is not None]
        if not todo:
            break
        results = store.swap_many([swap for swap, _, _ in todo])
        lost: list[str] = []
        for (swap, token, done), result in zip(todo, results, strict=True):
            if result is None:
                lost.append(swap.job_id)
                continue
            completed = completed or done
            metrics.observe_rows(swap.rows)
            if token is not None:
                won.append((swap.new, token))  # ours: a store keeps no reference to it
        if not lost:
            break
        candidates = _reread(store, lost, at)
    if completed:
        _notify_changed()
    return won


RESCAN_LOST = 16
"""Lost swaps past which :func:`claim_due_jobs` re-reads with one due scan, not one read each."""


def _reread(store: JobStore, lost: list[str], at: datetime) -> list[Stored]:
    """The current copies of the jobs whose swap lost, as far as a sweep at ``at`` can
    still change them.

    Few: read one by one. Many (another node's batch took them — on PostgreSQL
    each read is a round trip): one ``scan(due_by=at)``, which lists every job a
    sweep at ``at`` could change; a lost job missing from it was claimed or
    changed by its winner so that nothing is due, and sweeping it would do nothing.
    """
    if len(lost) <= RESCAN_LOST:
        return [s for s in (store.get(job_id) for job_id in lost) if s is not None]
    wanted = set(lost)
    return [s for s in store.scan(due_by=at) if s.job["id"] in wanted]


def _apply_results(
    results: Sequence[tuple[str, str, str, str | None]], at: datetime
) -> list[tuple[bool, bool]]:
    """Apply run results, fenced by token, in one ``swap_many`` (re-read on a lost swap).

    Returns ``(applied, completed)`` per result.
    """
    store = get_store()
    out: list[tuple[bool, bool]] = [(False, False)] * len(results)
    pending = list(range(len(results)))
    for _ in range(CAS_ATTEMPTS):
        which: list[int] = []
        # Results for the same job in one batch are applied to one copy, in order.
        current: dict[str, tuple[Stored | None, Job | None]] = {}
        for i in pending:
            job_id, token, status, error = results[i]
            if job_id not in current:
                stored = store.get(job_id)
                current[job_id] = (stored, stored.job if stored is not None else None)
            stored, job = current[job_id]
            if stored is None or job is None:
                continue
            was = job.get("state")
            if rules.apply_run_result(job, token, now=at, status=status, error=error):
                out[i] = (True, was != "completed" and job.get("state") == "completed")
                which.append(i)
        changed = {results[i][0] for i in which}
        by_job: dict[str, Swap] = {}
        for job_id, (stored, job) in current.items():
            if stored is not None and job is not None and job_id in changed:
                by_job[job_id] = Swap(job_id, stored.rev, job)
        if not by_job:
            return out
        won = dict(zip(by_job, store.swap_many(list(by_job.values())), strict=True))
        lost = {job_id for job_id, result in won.items() if result is None}
        if not lost:
            return out
        pending = [i for i in which if results[i][0] in lost]
        for i in pending:
            out[i] = (False, False)
    raise TimeoutError(f"{CAS_ATTEMPTS} writers in a row changed these jobs first")


def mark_job_run(
    job_id: str,
    token: str,
    *,
    success: bool,
    error: str | None = None,
    status: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Record a run's result — only if ``token`` still holds the job's live claim.

    A stale owner (its claim expired and the slot moved on) cannot overwrite a
    newer run's result: it gets False and nothing changes. On success the
    claim is cleared and ``last_run_at``, ``last_status``, ``last_error``,
    ``failure_streak`` are set; a spent job becomes ``completed``. The write is
    a compare-and-set on the job, so a result racing a claim or another
    result is applied to what that writer left, or not at all.
    """
    status = status or ("ok" if success else "error")
    [(applied, completed)] = _apply_results([(job_id, token, status, error)], _now(now))
    if completed:
        # The set of jobs that can fire shrank: external providers must hear it.
        _notify_changed()
    return applied


def mark_job_runs(
    results: list[tuple[str, str, str, str | None]], *, now: datetime | None = None
) -> list[bool]:
    """:func:`mark_job_run` for many runs in one ``swap_many``.

    ``results`` are ``(job_id, token, status, error)``; returns, per entry,
    whether it applied (same compare as :func:`mark_job_run`).
    """
    if not results:
        return []
    out = _apply_results(results, _now(now))
    if any(done for _, done in out):
        _notify_changed()
    return [applied for applied, _ in out]


def claim_retry(
    job_id: str,
    token: str,
    *,
    attempt: int,
    start_at: datetime,
    now: datetime | None = None,
    source: str = "tick",
) -> tuple[rules.RetryClaim, str | None, Job | None]:
    """Pass the claim ``token`` holds to attempt ``attempt`` of its slot (``rules.retry_claim``).

    One compare-and-set; the attempt's ``claimed`` ledger row (id = the new
    token, ``attempt`` set) rides on the same swap. Returns the verdict, the
    new token and the job as written (None unless granted).
    """
    at = _now(now)
    stamp = to_iso(at)
    store = get_store()
    for _ in range(CAS_ATTEMPTS):
        stored = store.get(job_id)
        job = stored.job if stored is not None else None
        verdict, new = rules.retry_claim(job, token, now=at, start_at=start_at, attempt=attempt)
        if new is None or stored is None or job is None:
            return verdict, None, None
        claim = job["fire_claim"]
        row = LedgerRow(
            new,
            job_id,
            "claimed",
            claim["scheduled_at"],
            stamp,
            source,
            owner_id(),
            job.get("name"),
            attempt=attempt,
        )
        if store.swap_many([Swap(job_id, stored.rev, job, (row,))])[0] is not None:
            return verdict, new, json_copy(job)
    raise TimeoutError(f"job {job_id!r}: {CAS_ATTEMPTS} writers in a row changed it first")


def retry_may_start(
    job_id: str, token: str, *, now: datetime | None = None
) -> tuple[rules.RetryClaim, Job | None]:
    """Whether the attempt waiting with ``token`` may start now, and the job as it is."""
    job = get_job(job_id)
    return rules.may_start_retry(job, token, now=_now(now)), job


def refresh_claims(held: Sequence[tuple[str, str]], *, now: datetime | None = None) -> list[bool]:
    """Re-date the live claims held by these ``(job_id, token)`` pairs in one ``swap_many``.

    Returns, per pair, whether the token still held the claim (False: the
    claim is gone — released, taken over, or the job removed).
    """
    at = _now(now)
    store = get_store()
    out = [False] * len(held)
    pending = list(range(len(held)))
    for _ in range(CAS_ATTEMPTS):
        swaps: list[Swap] = []
        idx: list[int] = []
        for i in pending:
            job_id, token = held[i]
            stored = store.get(job_id)
            if stored is not None and rules.refresh(stored.job, token, now=at):
                swaps.append(Swap(job_id, stored.rev, stored.job))
                idx.append(i)
        if not swaps:
            return out
        results = store.swap_many(swaps)
        pending = []
        for i, result in zip(idx, results, strict=True):
            if result is None:
                pending.append(i)
            else:
                out[i] = True
        if not pending:
            return out
    return out


def refresh_claim(job_id: str, token: str, *, now: datetime | None = None) -> bool:
    """Re-date the live claim held by ``token`` (called by running jobs every ``claim_ttl/3``)."""
    return refresh_claims([(job_id, token)], now=now)[0]


__all__ = [
    "claim_due_jobs",
    "claim_job_for_fire",
    "claim_job_for_fire_ex",
    "claim_retry",
    "claim_signed_fire",
    "mark_job_run",
    "mark_job_runs",
    "refresh_claim",
    "refresh_claims",
    "retry_may_start",
]
