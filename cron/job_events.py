"""The job event log the audit reads (SPEC §13): when each job was owed slots.

:mod:`cron.jobs` records one row in ``job_events`` after every successful
mutation (``create``, ``edit``, ``pause``, ``resume``, ``remove``);
:mod:`cron.audit_ledger` reads them back. Writes are best-effort.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from cron.ledger import write_ledger
from cron.model import JobDoc
from cron.schedule import to_iso

# Logged under the ledger API's name: the gateway's log lines name it.
log = logging.getLogger("cron.executions")

EVENT_KINDS = ("create", "edit", "pause", "resume", "remove")
"""Job lifecycle events the audit reads (SPEC §13): when a job was owed slots."""


# -- event rows ------------------------------------------------------------------------------

_INSERT_EVENT = "INSERT INTO job_events (job_id, kind, at, schedule, detail) VALUES (?, ?, ?, ?, ?)"


def record_job_event(kind: str, job: JobDoc, *, at: datetime, before: JobDoc | None = None) -> None:
    """Record one lifecycle event of ``job`` (its state after the event; for ``remove``
    the job as it was). Best-effort: a failure is logged, never raised — the mutation
    it describes is already durable."""
    try:
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown job event kind {kind!r}")
        removed = kind == "remove"
        detail = {
            # Not a JobState: the audit's marker that the job stopped existing here.
            "state": "removed" if removed else job.get("state"),
            "next_run_at": None if removed else job.get("next_run_at"),
            "prev_next_run_at": (before or {}).get("next_run_at") if before else None,
            "catch_up": job.get("catch_up"),
            "name": job.get("name"),
            "created_at": job.get("created_at"),
            "last_scheduled_at": job.get("last_scheduled_at"),
        }
        row = (
            str(job["id"]),
            kind,
            to_iso(at),
            json.dumps(job.get("schedule"), sort_keys=True),
            json.dumps(detail, sort_keys=True),
        )
        write_ledger(lambda conn: conn.execute(_INSERT_EVENT, row))
    except Exception:
        log.warning("could not record the %s event of job %s", kind, job.get("id"), exc_info=True)


__all__ = ["EVENT_KINDS", "record_job_event"]
