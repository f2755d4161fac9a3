"""The completeness audit (SPEC §13), as callers use it: ``verify``, its report as
``cronkit verify`` prints it, and what a ticker stall cost.

The rules — which slots a job owed and how each one is accounted — are in
:mod:`cron.audit_verdict` (its docstring states them); reading the ledger is
:mod:`cron.audit_ledger`. This module is above both and re-exports the names
callers know from ``cron.audit``.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from cron.audit_verdict import AuditReport, JobAudit, SlotProblem, verify
from cron.job_events import EVENT_KINDS, record_job_event
from cron.model import RAN_STATUSES, RunStatus
from cron.schedule import to_iso

log = logging.getLogger(__name__)

MAX_LISTED = 20
"""``cronkit verify`` lists at most this many lost and double slots (``--json`` has all)."""


def _counts(parts: dict[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in parts.items() if n) or "none"


def format_report(report: AuditReport, *, ok_mark: str = "✓", bad_mark: str = "✗") -> list[str]:
    """The lines ``cronkit verify`` prints: a verdict, the counts, then the problems."""
    t = report.totals()
    window = f"{to_iso(report.since)} .. {to_iso(report.until)}"
    if report.ok:
        head = (
            f"{ok_mark} every slot accounted for exactly once: {t['owed']} slot"
            f"{'s' if t['owed'] != 1 else ''} of {t['jobs']} job"
            f"{'s' if t['jobs'] != 1 else ''} in {window}"
        )
    else:
        head = (
            f"{bad_mark} {t['lost']} lost, {t['double']} double of {t['owed']} slots of "
            f"{t['jobs']} jobs in {window}"
        )
    lines = [
        head,
        f"  outcomes:    {_counts(t['outcomes'])}",
        f"  passed over: {_counts(t['passed_over'])} (accounted by a later decision)",
    ]
    extra = {k: t[k] for k in ("pending", "superseded", "unverifiable", "unowed_rows")}
    if any(extra.values()):
        lines.append(f"  not owed:    {_counts(extra)}")
    for label, problems in (("lost", report.lost), ("double", report.double)):
        for p in problems[:MAX_LISTED]:
            who = f"{p.job_id} ({p.name})" if p.name else p.job_id
            seen = f" [{', '.join(p.statuses)}]" if p.statuses else ""
            lines.append(f"  {bad_mark} {label}: job {who} slot {p.slot}: {p.reason}{seen}")
        if len(problems) > MAX_LISTED:
            lines.append(f"    ... and {len(problems) - MAX_LISTED} more {label} (see --json)")
    return lines


# -- ticker stalls ---------------------------------------------------------------------------

GAP_FILE = "ticker_gap"
STALL_MEMORY = timedelta(hours=24)
"""How long after a stall ``status`` still reports what it cost."""


def note_ticker_start(*, now: float | None = None) -> None:
    """Called by a ticker as it starts, before its first heartbeat: a previous heartbeat
    older than ``stale_after`` means the ticker was stalled or down since then, and the
    window ``[that heartbeat, now]`` is kept in ``<home>/cron/ticker_gap`` for ``status``.
    Best-effort."""
    try:
        from cron import paths
        from cron.config import read_config, stale_after
        from cron.jobs import read_ticker_heartbeat

        t = time.time() if now is None else float(now)
        beat, _, _ = read_ticker_heartbeat()
        if beat is None or t - beat <= stale_after(read_config()):
            return
        paths.cron_dir(create=True)
        paths.atomic_write_text(
            paths.cron_dir() / GAP_FILE, json.dumps({"from": beat, "to": t}) + "\n", durable=False
        )
    except Exception:
        log.warning("could not record the ticker's downtime", exc_info=True)


def read_ticker_gap() -> tuple[float, float] | None:
    from cron import paths

    try:
        data = json.loads((paths.cron_dir() / GAP_FILE).read_text(encoding="utf-8"))
        return float(data["from"]), float(data["to"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stall_impact(*, now: float, beat: float | None, limit: float) -> dict[str, Any] | None:
    """What the last stall cost, from the audit: None when there was none to report.

    The window is ``[last heartbeat, now]`` while the heartbeat is older than
    ``limit`` (ongoing), else the gap the current ticker found when it started
    (``ticker_gap``), for :data:`STALL_MEMORY` after it ended.
    """
    ongoing = beat is not None and now - beat > limit
    if ongoing:
        assert beat is not None
        start, end = beat, now
    else:
        gap = read_ticker_gap()
        if gap is None or now - gap[1] > STALL_MEMORY.total_seconds():
            return None
        start, end = gap
    start = max(start, end - STALL_MEMORY.total_seconds())
    report = verify(
        since=datetime.fromtimestamp(start, UTC),
        until=datetime.fromtimestamp(end, UTC),
        now=datetime.fromtimestamp(max(now, end), UTC),
    )
    t = report.totals()
    outcomes: dict[str, int] = t["outcomes"]
    passed: dict[str, int] = t["passed_over"]
    # "running" is every live row (audit_verdict folds claimed into it).
    fired = sum(n for k, n in outcomes.items() if k in RAN_STATUSES)
    lost = report.lost
    return {
        "from": to_iso(report.since),
        "to": None if ongoing else to_iso(report.until),
        "ongoing": ongoing,
        "slots": t["owed"],
        "fired": fired,
        "replaced_by_late_fire": passed.get("late_fire", 0) + passed.get("forced", 0),
        "missed": outcomes.get(RunStatus.MISSED, 0) + passed.get(RunStatus.MISSED, 0),
        "skipped": outcomes.get(RunStatus.SKIPPED, 0) + passed.get(RunStatus.SKIPPED, 0),
        "waiting": t["pending"] + sum(1 for p in lost if p.overdue),
        "lost": sum(1 for p in lost if not p.overdue),
        "double": t["double"],
    }


__all__ = [
    "EVENT_KINDS",
    "AuditReport",
    "JobAudit",
    "SlotProblem",
    "note_ticker_start",
    "record_job_event",
    "format_report",
    "stall_impact",
    "verify",
]
