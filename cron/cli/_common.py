"""What most verbs start with: the config checked, and a job found by id or name."""

from __future__ import annotations

from typing import Any

from cron.cli._errors import echo_err, fail
from cron.cli._format import em_dash
from cron.config import load_config


def checked_config(*, store: bool = False) -> dict[str, Any]:
    """Load config.yaml (and, with ``store``, parse ``jobs.json``) before anything is written.

    A broken config or a corrupt store then fails the verb before it takes a
    lock or creates a file.
    """
    cfg = load_config()
    if store:
        from cron.store import get_store

        get_store().count()
    return cfg


def resolve_job(ref: str) -> dict[str, Any]:
    """The job whose id is ``ref``, else the one job named ``ref``; else exit 2."""
    from cron import jobs

    all_jobs = jobs.list_jobs()
    for job in all_jobs:
        if job.get("id") == ref:
            return job
    named = [j for j in all_jobs if j.get("name") == ref]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        ids = ", ".join(j["id"] for j in named)
        fail(f"the name {ref!r} matches {len(named)} jobs ({ids}); use the id instead")
    fail(f"no job with id or name {ref!r} (see 'cronkit list --all')")


def warn_six_fields(schedule: dict[str, Any]) -> None:
    """One stderr line when a six-field expression fires many times a minute (SPEC §14)."""
    from cron.schedule import six_field_warning

    warning = six_field_warning(schedule, dash=em_dash())
    if warning is not None:
        echo_err(f"cronkit: warning: {warning}")
