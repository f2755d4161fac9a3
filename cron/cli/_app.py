"""The ``cronkit`` group itself; every verb module adds its commands to :data:`main`."""

from __future__ import annotations

import click

from cron import __version__
from cron.cli._errors import CronkitGroup, setup_logging


@click.group(
    cls=CronkitGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("-v", "--verbose", count=True, help="Log to stderr (-v info, -vv debug).")
@click.version_option(__version__, "--version", prog_name="cronkit")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """cronkit: fire jobs exactly when due, never twice, never silently stop.

    Jobs are referred to by id or by their (unique) name.
    """
    if isinstance(ctx.command, CronkitGroup):
        ctx.command.verbosity = verbose
    setup_logging(verbose)
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    # A verb that changes jobs tells a configured external provider (e.g. the crontab)
    # for as long as it runs; a host using cron.jobs directly never resolves plugins.
    from cron.changes import bus
    from cron.scheduler_provider import notify_jobs_changed

    bus.subscribe(notify_jobs_changed)
    ctx.call_on_close(lambda: bus.unsubscribe(notify_jobs_changed))
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
