"""Why a job did (not) fire and whether every slot was kept: ``explain``, ``verify``."""

from __future__ import annotations

from datetime import datetime

import click

from cron.cli._app import main
from cron.cli._common import checked_config, resolve_job
from cron.cli._errors import CliError, fail
from cron.cli._format import echo_json, symbols


@main.command("explain", short_help="Why a job did (not) fire, and whether it will.")
@click.argument("job_ref", metavar="ID")
@click.option(
    "--limit",
    type=click.IntRange(0, 1000),
    default=5,
    show_default=True,
    help="How many of the job's last recorded slots to show.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
def explain_cmd(job_ref: str, limit: int, as_json: bool) -> None:
    """Explain a job in plain sentences: state, next slot, claim, last slots, the ticker."""
    cfg = checked_config()
    job = resolve_job(job_ref)
    from cron.explain import explain_job, format_explanation

    explanation = explain_job(job["id"], limit=limit, cfg=cfg)
    if as_json:
        echo_json(explanation.to_dict())
        return
    for line in format_explanation(explanation):
        click.echo(line)


@main.command("verify", short_help="Audit: every slot owed got exactly one outcome (exit 0/1).")
@click.argument("job_ref", metavar="[JOB]", required=False)
@click.option("--since", metavar="ISO", help="Window start (default: --until minus 24 h).")
@click.option("--until", metavar="ISO", help="Window end (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print the audit report as JSON.")
@click.pass_context
def verify_cmd(
    ctx: click.Context, job_ref: str | None, since: str | None, until: str | None, as_json: bool
) -> None:
    """Check the ledger: every slot each job owed in the window has exactly one outcome.

    Exit 0 when every slot is accounted for exactly once, 1 when a slot is lost
    or doubled, 2 on bad input.
    """
    checked_config()
    from cron.audit import format_report, verify
    from cron.schedule import parse_instant

    def instant(option: str, value: str | None) -> datetime | None:
        if value is None:
            return None
        try:
            return parse_instant(value)
        except ValueError:
            fail(
                f"{option} {value!r} is not an ISO-8601 timestamp (e.g. 2026-12-01T09:00; "
                "naive = the configured zone)"
            )

    start, end = instant("--since", since), instant("--until", until)
    job_id: str | None = None
    if job_ref is not None:
        try:
            job_id = resolve_job(job_ref)["id"]
        except CliError:
            job_id = job_ref  # a removed job: the audit knows it from its events
    report = verify(job_id=job_id, since=start, until=end)
    if as_json:
        echo_json(report.to_dict())
    else:
        for line in format_report(report, ok_mark=symbols()[0], bad_mark=symbols()[1]):
            click.echo(line)
    ctx.exit(report.exit_code)
