"""``cronkit store info`` / ``store copy``: which job store is in use; copying jobs out."""

from __future__ import annotations

import click

from cron.cli._app import main
from cron.cli._common import checked_config
from cron.cli._errors import fail
from cron.cli._format import echo_json, echo_kv


@main.group("store", short_help="Which job store is in use; copy jobs to another.")
def store_group() -> None:
    """The job store (cron.store / $CRONKIT_STORE): where jobs, runs and claims live."""


@store_group.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print the store description.")
def store_info_cmd(as_json: bool) -> None:
    """Backend, location (password masked), schema version and job count."""
    checked_config()
    from cron.store import get_store

    info = get_store().info()
    if as_json:
        echo_json(info)
        return
    echo_kv(
        [
            ("backend", str(info["backend"])),
            ("url", str(info["url"] or "json")),
            ("location", str(info.get("location", ""))),
            ("schema version", str(info.get("schema_version"))),
            ("jobs", str(info["jobs"])),
        ]
    )


@store_group.command("copy")
@click.argument("url")
def store_copy_cmd(url: str) -> None:
    """Copy every job (ids and state unchanged) into the empty store at URL."""
    checked_config(store=True)
    from cron.store import get_store
    from cron.stores import open_store
    from cron.stores.copy import copy_jobs

    source = get_store()
    target = open_store(url)
    try:
        if target.url == source.url and target.ledger().location == source.ledger().location:
            fail(f"{url!r} is the configured store itself; nothing to copy")
        count = copy_jobs(source, target)
    finally:
        target.close()
    click.echo(f"copied {count} job(s) from {source.url} to {target.url}")
