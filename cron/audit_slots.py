"""The slots a job owed: its schedule's segments between events, and their slots (SPEC §13).

Split from :mod:`cron.audit_verdict`, which judges each owed slot's outcome. All
instants are integer microseconds since the epoch (``cron.audit_ledger._us``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cron.audit_ledger import JobEvent, _from_us, _parse_us, _us
from cron.claim import ONE_SHOT_GRACE
from cron.model import JobDoc, JobState
from cron.schedule import compute_next_run, grace_seconds, iter_slots

# -- owed slots ------------------------------------------------------------------------------


@dataclass
class Segment:
    schedule: dict[str, Any]
    anchor: int
    end: int | None = None
    """Instant of the event that closed it; None while open."""
    end_prev: int | None = None
    """``next_run_at`` just before the closing event: slots at/after it were undecided."""
    end_last: int | None = None
    """The job's last fired slot at the closing event."""


def segments(events: list[JobEvent], job: JobDoc | None) -> list[Segment]:
    segs: list[Segment] = []
    if not events or events[0].kind != "create":
        legacy = legacy_segment(job, events[0].at if events else None)
        if legacy is not None:
            segs.append(legacy)
    open_seg = segs.pop() if segs and segs[-1].end is None else None
    for ev in events:
        if open_seg is not None:
            open_seg.end, open_seg.end_prev, open_seg.end_last = (
                ev.at,
                ev.prev_next_run,
                ev.last_slot,
            )
            segs.append(open_seg)
            open_seg = None
        if (
            ev.kind != "remove"
            and ev.state == JobState.SCHEDULED
            and ev.next_run is not None
            and ev.schedule is not None
        ):
            open_seg = Segment(ev.schedule, ev.next_run)
    if open_seg is not None:
        segs.append(open_seg)
    return segs


def legacy_segment(job: JobDoc | None, first_event: int | None) -> Segment | None:
    """A job older than the event log: its current schedule from ``created_at``."""
    if job is None:
        return None
    created = _parse_us(job.get("created_at"))
    schedule = job.get("schedule") or {}
    if created is None:
        return None
    kind = schedule.get("kind")
    nxt = _parse_us(job.get("next_run_at"))
    if kind == "interval":
        step = int(schedule.get("seconds") or 0) * 1_000_000
        ref = nxt if nxt is not None else _parse_us(job.get("last_scheduled_at"))
        if step <= 0 or ref is None:
            return None
        anchor = ref - max(0, (ref - created) // step) * step
    else:
        first = compute_next_run(schedule, after=_from_us(created))
        if first is None:
            return None
        anchor = _us(first)
    seg = Segment(schedule, anchor)
    paused = _parse_us(job.get("paused_at"))
    if first_event is not None:
        seg.end = first_event
    elif paused is not None and job.get("state") == JobState.PAUSED:
        seg.end = paused
    return seg


def owed_slots(schedule: dict[str, Any], anchor: int, lo: int, hi: int) -> Iterable[int]:
    """The schedule's slots in ``[lo, hi]`` of the series that starts at ``anchor``."""
    lo = max(lo, anchor)
    if hi < lo:
        return ()
    kind = schedule.get("kind")
    if kind == "interval":
        step = int(schedule.get("seconds") or 0) * 1_000_000
        if step <= 0:
            return ()
        first = anchor + -(-(lo - anchor) // step) * step
        return range(first, hi + 1, step)
    if kind == "once":
        return (anchor,) if lo <= anchor <= hi else ()
    limit = (hi - lo) // 1_000_000 + 2  # never more than one a second
    return [_us(s) for s in iter_slots(schedule, start=_from_us(lo), end=_from_us(hi), limit=limit)]


def grace_us(schedule: dict[str, Any], slot: int) -> int:
    if schedule.get("kind") == "once":
        return int(ONE_SHOT_GRACE * 1_000_000)
    return int(grace_seconds(schedule, now=_from_us(slot)) * 1_000_000)


__all__ = ["Segment", "grace_us", "legacy_segment", "owed_slots", "segments"]
