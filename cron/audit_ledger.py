"""The audit's reading of the ledger: event rows, outcome rows and retention horizons.

What :mod:`cron.audit_verdict` judges, read in one pass per table and kept as
microseconds since the epoch (``_us``) so the verdict compares integers, not text.
Nothing here decides anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cron.ledgerdb import SqlConn
from cron.model import parse_optional_ts
from cron.schedule import to_iso

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_INF = 1 << 62


def _us(dt: datetime) -> int:
    return (dt - _EPOCH) // _US


def _from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _parse_us(text: object) -> int | None:
    dt = parse_optional_ts(text)
    return None if dt is None else (dt - _EPOCH) // _US


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@dataclass(frozen=True)
class JobEvent:
    job_id: str
    kind: str
    at: int
    schedule: dict[str, Any] | None
    state: str | None
    next_run: int | None
    prev_next_run: int | None
    name: str | None
    last_slot: int | None = None


def _read_events(conn: SqlConn, job_id: str | None) -> dict[str, list[JobEvent]]:
    sql = "SELECT job_id, kind, at, schedule, detail FROM job_events"
    params: tuple[str, ...] = ()
    if job_id is not None:
        sql += " WHERE job_id = ?"
        params = (job_id,)
    out: dict[str, list[JobEvent]] = {}
    for jid, kind, at, sched, detail in conn.execute(sql + " ORDER BY id", params):
        d = json.loads(detail) if detail else {}
        at_us = _parse_us(at)
        if at_us is None:
            continue
        out.setdefault(jid, []).append(
            JobEvent(
                jid,
                kind,
                at_us,
                json.loads(sched) if sched else None,
                d.get("state"),
                _parse_us(d.get("next_run_at")),
                _parse_us(d.get("prev_next_run_at")),
                d.get("name"),
                _parse_us(d.get("last_scheduled_at")),
            )
        )
    return out


# -- outcome rows ----------------------------------------------------------------------------


@dataclass
class _Rows:
    exact: dict[int, list[tuple[int, str, str]]] = field(default_factory=dict)
    """slot -> [(attempt, when, status)]; ``when`` as canonical ISO text (sorts as time)."""
    texts: dict[int, str] = field(default_factory=dict)
    """slot -> its canonical ISO text, comparable with ``when``."""
    _decisions: list[tuple[int, int, str]] | None = None

    def decisions(self) -> list[tuple[int, int, str]]:
        """(when, slot, status), sorted: what was decided, and when. Built on demand —
        only a slot without a row of its own needs it."""
        if self._decisions is None:
            out = []
            for slot, grp in self.exact.items():
                for _, when, status in grp:
                    at = _parse_us(when)
                    if at is not None:
                        out.append((at, slot, status))
            out.sort()
            self._decisions = out
        return self._decisions


def _canonical(text: str) -> str:
    # cronkit writes ISO text in UTC with "+00:00" (25 or 32 characters), which sorts
    # as time does; anything else is rewritten to that form.
    if len(text) in (25, 32) and text.endswith("+00:00"):
        return text
    at = _parse_us(text)
    return to_iso(_from_us(at)) if at is not None else ""


def _read_rows(
    conn: SqlConn, job_id: str | None, since: int, *, has_attempt: bool
) -> dict[str, _Rows]:
    attempt = "attempt" if has_attempt else "1"
    when = "COALESCE(claimed_at, started_at, finished_at, scheduled_at)"
    # A margin below ``since``: the text comparison is only a prefilter.
    cut = to_iso(_from_us(since) - timedelta(hours=1))
    sql = (
        f"SELECT job_id, scheduled_at, {when}, status, {attempt} FROM executions "
        f"WHERE (scheduled_at >= ? OR {when} >= ?)"
    )
    params: list[str] = [cut, cut]
    if job_id is not None:
        sql += " AND job_id = ?"
        params.append(job_id)
    out: dict[str, _Rows] = {}
    _fill_rows(conn.execute(sql, params), out)
    return out


def _fill_rows(cursor: Iterable[tuple[Any, ...]], out: dict[str, _Rows]) -> None:
    # Jobs share slots (every job on a minute grid fires at :00): parse each text once.
    slots: dict[str, int | None] = {}
    parse = _parse_us
    for jid, sched, w, status, att in cursor:
        rows = out.get(jid)
        if rows is None:
            rows = out[jid] = _Rows()
        slot = slots.get(sched, -1)
        if slot == -1:
            slot = slots[sched] = parse(sched)
        if slot is None or not w:
            continue
        if not (len(w) in (25, 32) and w.endswith("+00:00")):
            w = _canonical(w)
        entry = (att if type(att) is int else int(att or 1), w, status)
        grp = rows.exact.get(slot)
        if grp is None:
            rows.exact[slot] = [entry]
            rows.texts[slot] = (
                sched if len(sched) in (25, 32) and sched.endswith("+00:00") else _canonical(sched)
            )
        else:
            grp.append(entry)


def _retention(conn: SqlConn, job_id: str | None) -> dict[str, tuple[int, str]]:
    from cron.ledger_sql import KEEP_PER_JOB

    sql = (
        "SELECT job_id, COUNT(*), MIN(COALESCE(claimed_at, started_at, finished_at, "
        "scheduled_at)) FROM executions"
    )
    params: tuple[str, ...] = ()
    if job_id is not None:
        sql += " WHERE job_id = ?"
        params = (job_id,)
    sql += " GROUP BY job_id"
    return {
        jid: (n, oldest)
        for jid, n, oldest in conn.execute(sql, params)
        if n >= KEEP_PER_JOB and oldest
    }
