"""The audit's verdict (SPEC §13): did every slot owed in a window get exactly one outcome?

Two inputs, both in the ledger database (``get_store().ledger()``):

* **event rows** (table ``job_events``): ``create``, ``edit``, ``pause``,
  ``resume`` and ``remove``, each with its instant, the schedule in force after
  it and, in ``detail``, the job's ``next_run_at`` after the event and *before*
  it. :mod:`cron.jobs` records one after every successful mutation
  (best-effort: a failed write is logged, the mutation stands);
* **outcome rows** (table ``executions``): fires, ``missed`` and ``skipped``.

The rules, which mirror :mod:`cron.claim` exactly:

1. **Owed slots.** Between two events a job that is ``scheduled`` owes the slots
   of its schedule from the event's ``next_run_at`` on, enumerated with
   :mod:`cron.schedule` (``iter_slots`` for cron, so DST gaps and folds give
   exactly the ticker's slots, in the job's own zone; whole steps from the
   anchor for intervals; ``run_at`` for a one-shot). Slots before creation,
   while paused, or after removal are not owed.
2. **Decided or not.** The ticker decides a slot when its claim advances
   ``next_run_at`` past it. At an event, slots at or after the ``next_run_at``
   the job had *before* the event (and not after the event's instant) were still
   undecided: the event supersedes them (an edit or a pause during a stall) —
   counted ``superseded``, not owed. In the open segment, slots at or after the
   job's current ``next_run_at`` are undecided: ``pending`` while within grace
   of ``until`` (the ticker may simply not have got there yet), else
   ``lost`` with reason ``overdue`` (the ticker is stalled or down). A job
   with no next run (spent: ``repeat.times`` used up, also a one-shot edited
   into a recurring schedule that kept ``times: 1``) owes nothing after its last
   decision, until an event re-arms it.
3. **An outcome of its own.** A row whose ``scheduled_at`` is the slot
   accounts for it (``ok error timeout interrupted unknown missed skipped``;
   ``claimed``/``running`` = ``running``). Retries (an ``attempt`` column, when
   the ledger has one) count once, by the last attempt; two first attempts are
   a ``double``.
4. **Passed over by a decision.** Every decision at instant ``C`` for slot
   ``S`` moves ``next_run_at`` past ``C`` (SPEC §3: "never as a burst"), so the
   slots in ``(S, C]`` get no row of their own. A decided slot ``X`` with no
   row is accounted by the *first decision made at or after X* (smallest
   ``COALESCE(claimed_at, started_at, finished_at)``; of the rows one decision
   wrote at one instant, the latest slot) if that decision's slot is ``< X``:
   ``catch_up: once`` — the late fire replaced it (``late_fire``);
   ``catch_up: skip`` — the ``missed`` row covers it; an overlap — the
   ``skipped`` row. A forced run (a slot that is not on the job's grid) also
   consumes the slot it passed. Otherwise the slot is ``lost``.
5. **Double.** Two first attempts for one slot, or a slot that a decision had
   already passed over and that then got a row of its own later.

One-shots: the slot is ``run_at``; more than 120 s late the ticker writes a
``missed`` row (rule 3). Ledger retention is bounded per job: a job that has
reached the bound cannot prove slots older than its oldest kept row; those are
``unverifiable``, not lost. Jobs created before the event log existed are
audited with their current schedule from ``created_at``.

The ledger is read by :mod:`cron.audit_ledger`; :mod:`cron.audit` holds the
report's text form and what a ticker stall cost, and is where callers import
``verify`` from.
"""

from __future__ import annotations

import bisect
import gc
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cron.audit_ledger import (
    _INF,
    JobEvent,
    _aware,
    _from_us,
    _parse_us,
    _read_events,
    _read_rows,
    _retention,
    _Rows,
    _us,
)
from cron.audit_slots import Segment, grace_us, owed_slots, segments
from cron.errors import AuditWindowError, JobNotFoundError
from cron.model import LIVE_STATUSES, RAN_STATUSES, JobDoc, RunStatus
from cron.schedule import to_iso

DEFAULT_WINDOW = timedelta(hours=24)


# -- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotProblem:
    """A slot with no outcome (``lost``) or more than one (``double``)."""

    job_id: str
    name: str | None
    slot: str
    reason: str
    statuses: tuple[str, ...] = ()
    overdue: bool = False
    """A slot whose run should have been recorded by now but may still be (not yet lost
    for good): ``stall_impact`` counts it as waiting."""


def _problem(p: SlotProblem) -> dict[str, Any]:
    d = asdict(p)
    del d["overdue"]  # the --json shape is documented (docs/CLI.md); reason says it
    return d


@dataclass
class JobAudit:
    job_id: str
    name: str | None
    owed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    """Slots accounted by a row of their own, by final status (``running`` = in progress)."""
    passed_over: dict[str, int] = field(default_factory=dict)
    """Slots accounted by a later decision: ``late_fire`` / ``missed`` / ``skipped`` /
    ``forced``."""
    pending: int = 0
    superseded: int = 0
    unverifiable: int = 0
    unowed_rows: int = 0
    """Rows for slots the job did not owe in the window (forced runs, other windows)."""
    lost: list[SlotProblem] = field(default_factory=list)
    double: list[SlotProblem] = field(default_factory=list)

    @property
    def accounted(self) -> int:
        return sum(self.outcomes.values()) + sum(self.passed_over.values())


@dataclass
class AuditReport:
    since: datetime
    until: datetime
    jobs: list[JobAudit] = field(default_factory=list)

    @property
    def lost(self) -> list[SlotProblem]:
        return [p for j in self.jobs for p in j.lost]

    @property
    def double(self) -> list[SlotProblem]:
        return [p for j in self.jobs for p in j.double]

    @property
    def ok(self) -> bool:
        return not any(j.lost or j.double for j in self.jobs)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def totals(self) -> dict[str, Any]:
        outcomes: Counter[str] = Counter()
        passed: Counter[str] = Counter()
        for j in self.jobs:
            outcomes.update(j.outcomes)
            passed.update(j.passed_over)
        return {
            "jobs": len(self.jobs),
            "owed": sum(j.owed for j in self.jobs),
            "accounted": sum(j.accounted for j in self.jobs),
            "outcomes": dict(sorted(outcomes.items())),
            "passed_over": dict(sorted(passed.items())),
            "pending": sum(j.pending for j in self.jobs),
            "superseded": sum(j.superseded for j in self.jobs),
            "unverifiable": sum(j.unverifiable for j in self.jobs),
            "unowed_rows": sum(j.unowed_rows for j in self.jobs),
            "lost": sum(len(j.lost) for j in self.jobs),
            "double": sum(len(j.double) for j in self.jobs),
        }

    def to_dict(self) -> dict[str, Any]:
        jobs = []
        for j in self.jobs:
            d = asdict(j)
            d["accounted"] = j.accounted
            jobs.append(d)
        return {
            "since": to_iso(self.since),
            "until": to_iso(self.until),
            "ok": self.ok,
            "totals": self.totals(),
            "lost": [_problem(p) for p in self.lost],
            "double": [_problem(p) for p in self.double],
            "jobs": jobs,
        }


# -- the audit -------------------------------------------------------------------------------


def verify(
    *,
    job_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
) -> AuditReport:
    """Check that every slot owed in ``[since, until]`` has exactly one final outcome.

    Defaults: ``until`` = now, ``since`` = ``until`` − 24 h; ``until`` is never
    later than now (future slots are not owed yet). ``job_id`` narrows the audit
    to one job (a removed one too, while its events are kept); an id that is
    neither in the store nor in the ledger is :class:`JobNotFoundError`. A window
    that starts after it ends is :class:`AuditWindowError`. See the module
    docstring for the rules.
    """
    # Millions of small containers, none of them cyclic: the collector would walk them
    # again and again (it tripled the audit's time), so it waits until the audit is done.
    paused_gc = gc.isenabled()
    gc.disable()
    try:
        return _verify(job_id=job_id, since=since, until=until, now=now)
    finally:
        if paused_gc:
            gc.enable()


def _verify(
    *,
    job_id: str | None,
    since: datetime | None,
    until: datetime | None,
    now: datetime | None,
) -> AuditReport:
    from cron.jobs import list_jobs

    real_now = _aware(now) if now is not None else datetime.now(UTC)
    until = _aware(until) if until is not None else real_now
    since = _aware(since) if since is not None else until - DEFAULT_WINDOW
    if since > until:
        raise AuditWindowError(to_iso(since), to_iso(until))
    until = min(until, real_now)
    since = min(since, until)
    lo, hi = _us(since), _us(until)
    # The store first, then the ledger: a decision the store shows always has
    # its row by the time the ledger is read (rows ride on the claim's write).
    jobs = {j["id"]: j for j in list_jobs() if job_id is None or j["id"] == job_id}
    from cron.store import get_store

    ledger = get_store().ledger()
    events: dict[str, list[JobEvent]] = {}
    rows: dict[str, _Rows] = {}
    horizons: dict[str, tuple[int, str]] = {}
    with ledger.read() as conn:
        if conn is not None:
            if ledger.columns(conn, "job_events"):
                events = _read_events(conn, job_id)
            cols = ledger.columns(conn, "executions")
            if cols:
                rows = _read_rows(conn, job_id, lo, has_attempt="attempt" in cols)
                horizons = _retention(conn, job_id)
    if job_id is not None and job_id not in jobs and job_id not in events and job_id not in rows:
        raise JobNotFoundError(job_id)
    report = AuditReport(since, until)
    for jid in sorted(set(jobs) | set(events)):
        horizon = horizons.get(jid)
        report.jobs.append(
            _audit_job(
                jid,
                jobs.get(jid),
                events.get(jid, []),
                rows.get(jid) or _Rows(),
                lo,
                hi,
                _parse_us(horizon[1]) if horizon else None,
            )
        )
    return report


def _audit_job(
    job_id: str,
    job: JobDoc | None,
    events: list[JobEvent],
    rows: _Rows,
    lo: int,
    hi: int,
    horizon: int | None,
) -> JobAudit:
    name = (
        job.get("name")
        if job is not None
        else next((e.name for e in reversed(events) if e.name), None)
    )
    audit = JobAudit(job_id, name)
    decided: set[int] = set()
    undecided: dict[int, dict[str, Any]] = {}
    superseded: set[int] = set()

    def spent_at(seg: Segment, upto: int, last_slot: int | None) -> int:
        # The job had no next run (spent, or stopped by a schedule error): it owed
        # nothing after its last decision — at least its last fired slot, as the job
        # recorded it, so a dropped final row still shows. A one-shot owes its slot.
        if seg.schedule.get("kind") == "once":
            return upto
        decisions = rows.decisions()
        i = bisect.bisect_right([d[0] for d in decisions], upto) - 1
        last = decisions[i][0] if i >= 0 else -_INF
        return max(last, last_slot if last_slot is not None else -_INF)

    for seg in segments(events, job):
        if seg.end is not None:
            top = min(seg.end, hi)
            if seg.end_prev is None:
                top = min(top, spent_at(seg, seg.end, seg.end_last))
            for s in owed_slots(seg.schedule, seg.anchor, lo, top):
                if seg.end_prev is not None and s >= seg.end_prev:
                    superseded.add(s)
                else:
                    decided.add(s)
            continue
        if job is None:
            continue  # no remove event recorded: nothing more can be said
        nxt = _parse_us(job.get("next_run_at"))
        top = (
            hi
            if nxt is not None
            else min(hi, spent_at(seg, _INF, _parse_us(job.get("last_scheduled_at"))))
        )
        for s in owed_slots(seg.schedule, seg.anchor, lo, top):
            if nxt is not None and s >= nxt:
                undecided[s] = seg.schedule
            else:
                decided.add(s)
    superseded -= decided
    superseded.difference_update(undecided)
    audit.superseded = len(superseded)
    owed = decided | set(undecided)
    audit.owed = len(owed)

    exact = rows.exact
    # Rule 5, second half: a row for X after an earlier decision had passed X over.
    first_when = {
        slot: (grp[0][1] if len(grp) == 1 else min(w for _, w, _ in grp))
        for slot, grp in exact.items()
    }
    order = sorted(first_when)
    rerun: set[int] = set()
    texts = rows.texts
    for prev, cur in zip(order, order[1:], strict=False):
        passed_at = first_when[prev]
        if texts[cur] <= passed_at < first_when[cur]:
            rerun.add(cur)
    counts: dict[str, int] = {}
    missing: list[int] = []
    for s in owed:
        grp = exact.get(s)
        if grp is None:
            missing.append(s)
            continue
        if len(grp) == 1:
            status = grp[0][2]
        else:
            firsts = [st for att, _, st in grp if att <= 1]
            status = max(grp)[2]
            if len(firsts) > 1:
                audit.double.append(
                    SlotProblem(
                        job_id,
                        name,
                        to_iso(_from_us(s)),
                        f"{len(firsts)} outcomes",
                        tuple(sorted(firsts)),
                    )
                )
        counts[status] = counts.get(status, 0) + 1
        if s in rerun:
            audit.double.append(
                SlotProblem(
                    job_id,
                    name,
                    to_iso(_from_us(s)),
                    "ran again after a late decision had already accounted for it",
                    tuple(sorted(st for _, _, st in grp)),
                )
            )
    outcomes: Counter[str] = Counter()
    for status, n in counts.items():
        outcomes[RunStatus.RUNNING.value if status in LIVE_STATUSES else status] += n
    passed: Counter[str] = Counter()
    horizon_us = horizon if horizon is not None else -_INF
    decisions = rows.decisions() if missing else []
    whens = [d[0] for d in decisions]
    for s in sorted(missing):
        if s in undecided:
            sched = undecided[s]
            if s > hi - grace_us(sched, s):
                audit.pending += 1
            else:
                audit.lost.append(
                    SlotProblem(job_id, name, to_iso(_from_us(s)), "overdue", overdue=True)
                )
            continue
        i = bisect.bisect_left(whens, s)
        if i < len(decisions):
            # Rows written by one decision share its instant (the missed rows a webhook
            # fire of a later slot writes, then the fire): only its last row passes over.
            j = bisect.bisect_right(whens, whens[i]) - 1
            _, slot, status = decisions[j]
            if slot < s:
                passed["late_fire" if status in RAN_STATUSES else status] += 1
                continue
            if slot not in owed and slot not in superseded and slot <= hi:
                passed["forced"] += 1
                continue
        if s < horizon_us:
            audit.unverifiable += 1
            continue
        audit.lost.append(SlotProblem(job_id, name, to_iso(_from_us(s)), "no outcome"))
    audit.lost.sort(key=lambda p: p.slot)
    audit.double.sort(key=lambda p: p.slot)
    audit.outcomes = dict(sorted(outcomes.items()))
    audit.passed_over = dict(sorted(passed.items()))
    audit.unowed_rows = sum(1 for s in exact if lo <= s <= hi and s not in owed)
    return audit


__all__ = ["AuditReport", "JobAudit", "SlotProblem", "verify"]
