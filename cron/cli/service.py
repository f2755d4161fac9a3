"""What triggers the jobs: ``gateway``, ``install-service``, ``providers``."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, NoReturn

import click

from cron.cli._app import main
from cron.cli._common import checked_config
from cron.cli._errors import echo_err, error_message, setup_logging
from cron.cli._format import echo_json, echo_table
from cron.config import cfg_get


@main.command("providers")
@click.option("--json", "as_json", is_flag=True, help="Print providers and the selection.")
@click.option(
    "--reconcile",
    is_flag=True,
    help="Converge the selected provider's external state (e.g. the crontab) now.",
)
def providers_cmd(as_json: bool, reconcile: bool) -> None:
    """List trigger providers and which one the config selects."""
    cfg = checked_config()
    from cron.plugins import discover_cron_schedulers
    from cron.scheduler_provider import BUILTIN_ALIASES, resolve_cron_scheduler

    if reconcile:
        checked_config(store=True)  # a corrupt store must fail here, not half-way through
        provider = resolve_cron_scheduler(cfg)
        provider.reconcile()
        describe = getattr(provider, "status_detail", None)
        detail = str(describe()) if callable(describe) else None
        if as_json:
            echo_json({"reconciled": provider.name, "detail": detail})
            return
        suffix = f": {detail}" if detail is not None else ""
        click.echo(f"reconciled provider {provider.name}{suffix}")
        return

    configured = str(cfg_get(cfg, "cron", "provider", default="") or "").strip()
    found = discover_cron_schedulers()
    resolved = resolve_cron_scheduler(cfg).name
    rows: list[dict[str, Any]] = [
        {
            "name": "builtin",
            "description": "in-process ticker (core; always available, the fallback)",
            "available": True,
            "builtin": True,
        }
    ]
    rows += [{"name": n, "description": d, "available": a, "builtin": False} for n, d, a in found]
    if as_json:
        echo_json({"configured": configured, "resolved": resolved, "providers": rows})
        return
    echo_table(
        ["PROVIDER", "AVAILABLE", "DESCRIPTION"],
        [[r["name"], "yes" if r["available"] else "no", r["description"]] for r in rows],
    )
    click.echo("")
    if configured.lower() in BUILTIN_ALIASES:
        shown = repr(configured) if configured else "empty"
        click.echo(f"selected: builtin (cron.provider is {shown})")
    elif resolved == configured:
        click.echo(f"selected: {resolved} (cron.provider = {configured!r})")
    else:
        names = {n: a for n, _, a in found}
        why = (
            "not found"
            if configured not in names
            else ("not available here" if not names[configured] else "failed to load")
        )
        click.echo(
            f"selected: builtin - cron.provider = {configured!r} is {why}, "
            "so the built-in ticker runs"
        )


@main.command("install-service", short_help="Install a systemd unit running the gateway.")
@click.option(
    "--user",
    "user_unit",
    is_flag=True,
    help="A user unit (~/.config/systemd/user) instead of a system one.",
)
@click.option("--print", "print_only", is_flag=True, help="Print the unit; write nothing.")
@click.option("--force", is_flag=True, help="Replace a different unit already installed.")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="The gateway's shutdown grace for running jobs, in seconds.",
)
def install_service_cmd(user_unit: bool, print_only: bool, force: bool, grace: float) -> None:
    """Write (or --print) a systemd unit that runs 'cronkit gateway' for this home."""
    checked_config()
    from cron.service import enable_command, install_unit, render_unit

    text = render_unit(user=user_unit, grace=grace)
    if print_only:
        click.echo(text, nl=False)
        return
    result = install_unit(text, user=user_unit, force=force)
    verb = "wrote" if result.changed else "unchanged:"
    click.echo(f"{verb} {result.path}")
    click.echo(f"next: {enable_command(user=user_unit)}")


@main.command("gateway", short_help="Run the trigger and the webhook in the foreground.")
@click.option("--host", help="Webhook bind address (default: cron.webhook.host).")
@click.option(
    "--port", type=click.IntRange(0, 65535), help="Webhook port (default: cron.webhook.port)."
)
@click.option("--no-webhook", is_flag=True, help="Run the trigger only, no inbound webhook.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.01),
    metavar="S",
    help="Longest ticker sleep (default: cron.interval).",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to wait for running jobs on shutdown.",
)
@click.pass_context
def gateway_cmd(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    no_webhook: bool,
    interval: float | None,
    grace: float,
) -> None:
    """Run the trigger (and the webhook) in the foreground; Ctrl-C / SIGTERM stop it."""
    checked_config()
    setup_logging(int(ctx.obj.get("verbose", 0)) if ctx.obj else 0, daemon=True)
    from cron import scheduler
    from cron.gateway import run_gateway

    try:
        code = int(
            run_gateway(
                host=host, port=port, webhook=not no_webhook, interval=interval, grace=grace
            )
            or 0
        )
    except Exception as exc:
        if not scheduler.running_jobs():
            raise
        message, code = error_message(exc)
        echo_err(f"cronkit: error: {message}")
    if scheduler.running_jobs():
        _exit_now(code)
    ctx.exit(code)


def _exit_now(code: int) -> NoReturn:
    """End the process although a python callable still runs in one of its threads.

    run_gateway closed that run's row (nothing can stop a callable); the pool
    thread running it would keep the interpreter from exiting, and exiting is
    what ends it.
    """
    logging.shutdown()
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
