"""The job verbs: ``add``, ``list``, ``show``, ``edit``, ``pause``, ``resume``, ``remove``."""

from __future__ import annotations

import logging
import shlex
from datetime import UTC, datetime
from typing import Any

import click

from cron import paths
from cron.cli._app import main
from cron.cli._common import checked_config, resolve_job, warn_six_fields
from cron.cli._errors import echo_err, fail
from cron.cli._format import (
    action_text,
    configured_zone,
    echo_json,
    echo_kv,
    echo_table,
    em_dash,
    fmt_next_run,
    fmt_relative,
    fmt_time,
    job_label,
    one_line,
    repeat_text,
    schedule_text,
    to_dt,
)
from cron.cli._options import (
    command_text,
    cwd_option,
    here,
    parse_env,
    parse_repeat,
    parse_retry,
    parse_timeout,
)
from cron.config import cfg_get
from cron.errors import JobNotFoundError
from cron.model import JobState, is_active

log = logging.getLogger("cron.cli")


def _refuse_duplicate_name(name: str, *, except_id: str | None = None) -> None:
    """Exit 2 if an active job (not ``except_id``) already has ``name``: it would make the
    name ambiguous wherever a job is referred to by name."""
    from cron import jobs

    wanted = name.strip()
    for job in jobs.list_jobs():
        if job.get("name") == wanted and is_active(job) and job.get("id") != except_id:
            fail(
                f"an active job already has the name {wanted!r} ({job['id']}); choose "
                "another name or pass --allow-duplicate-name"
            )


def _ticker_warning(cfg: dict[str, Any]) -> None:
    """Warn on stderr when nothing will fire the jobs; never fails the verb."""
    from cron.status import ticker_status

    try:
        st = ticker_status(cfg=cfg)
    except Exception:
        log.debug("ticker status unavailable", exc_info=True)
        return
    dash = em_dash()
    if st.state == "stopped":
        echo_err(
            f"cronkit: warning: no ticker is running {dash} jobs will NOT fire; "
            "start one with 'cronkit gateway'"
        )
    elif st.state == "stalled":
        echo_err(
            f"cronkit: warning: the ticker is STALLED (last heartbeat {st.heartbeat_age or 0:.0f}s "
            f"ago) {dash} jobs are NOT firing; see 'cronkit status'"
        )
    elif st.state == "failing":
        echo_err(
            f"cronkit: warning: the ticker is FAILING {dash} jobs are NOT firing; "
            "see 'cronkit status'"
        )


# -- add / list / show ----------------------------------------------------------------------------


@main.command(
    "add",
    context_settings={"allow_interspersed_args": True},
    short_help="Add a job: SCHEDULE -- COMMAND... or --python pkg.mod:func.",
)
@click.argument("schedule")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--python", "target", metavar="PKG.MOD:FUNC", help="Call a Python function.")
@click.option("--name", help="A name for the job (usable instead of the id).")
@click.option("--repeat", metavar="N", help="Fire N times, then complete (default: forever).")
@click.option("--tz", metavar="ZONE", help="IANA zone to read a cron expression in.")
@click.option("--catch-up", type=click.Choice(["once", "skip"]), help="Missed-run policy.")
@click.option("--timeout", metavar="S", help="Seconds before a run is killed (0 = none).")
@click.option(
    "--retries",
    metavar="N",
    help="Run a failed slot again up to N times (default: cron.retry.max).",
)
@click.option(
    "--retry-backoff",
    metavar="DURATION",
    help="Wait before the first retry, doubling after (30s, 2m; default: cron.retry.backoff).",
)
@click.option(
    "--allow-duplicate-name", is_flag=True, help="Allow a name an active job already has."
)
@click.option("--disabled", is_flag=True, help="Create the job paused.")
@click.option(
    "--cwd",
    "cwd",
    metavar="DIR",
    help="Directory the job runs in (default: the current directory).",
)
@click.option(
    "--env",
    "env_pairs",
    metavar="NAME=VALUE",
    multiple=True,
    help="Set an environment variable for the command (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the created job as JSON.")
def add_cmd(
    schedule: str,
    command: tuple[str, ...],
    target: str | None,
    name: str | None,
    repeat: str | None,
    tz: str | None,
    catch_up: str | None,
    timeout: str | None,
    retries: str | None,
    retry_backoff: str | None,
    allow_duplicate_name: bool,
    disabled: bool,
    cwd: str | None,
    env_pairs: tuple[str, ...],
    as_json: bool,
) -> None:
    """Add a job firing on SCHEDULE.

    \b
    SCHEDULE: '0 9 * * 1-5', '@daily', 'every 30m', '30m', 'in 2h', '2026-12-01T09:00'.
    The action is the COMMAND after '--' (one argument is run as a shell
    command line as written; several are quoted and joined) or --python.
    It runs in the directory 'add' was run from, unless --cwd says otherwise.
    """
    cfg = checked_config(store=True)
    if command and target:
        raise click.UsageError("give either a command after '--' or --python, not both")
    if not command and not target:
        raise click.UsageError("missing the action: add '-- COMMAND...' or '--python pkg.mod:func'")
    _, times = parse_repeat(repeat)
    _, seconds = parse_timeout(timeout, allow_default=False)
    env = parse_env(env_pairs) or None
    work_dir = cwd_option(cwd) if cwd is not None else here()
    _, retry = parse_retry(retries, retry_backoff, allow_default=False)
    if name is not None and not allow_duplicate_name:
        _refuse_duplicate_name(name)
    action: dict[str, Any] = (
        {"kind": "python", "target": target}
        if target
        else {"kind": "command", "command": command_text(command)}
    )
    from cron import jobs

    job = jobs.create_job(
        schedule,
        action,
        name=name,
        repeat=times,
        enabled=not disabled,
        tz=tz,
        catch_up=catch_up,
        timeout=seconds,
        cwd=work_dir,
        env=env,
        retry=retry or None,
    )
    warn_six_fields(job["schedule"])
    if as_json:
        echo_json(job)
    else:
        click.echo(f"added job {job['id']} ({job['name']})")
        next_run = (
            fmt_time(job.get("next_run_at"))
            if job.get("next_run_at")
            else ("none (created paused; 'cronkit resume' to start it)")
        )
        echo_kv([("schedule", schedule_text(job)), ("next run", next_run)], indent="  ")
    if not disabled:
        _ticker_warning(cfg)


@main.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include paused and completed jobs.")
@click.option("--json", "as_json", is_flag=True, help='Print {"jobs": [...]}.')
def list_cmd(show_all: bool, as_json: bool) -> None:
    """List active jobs (--all: every job)."""
    cfg = checked_config()
    from cron import jobs

    listed = jobs.list_jobs(include_disabled=show_all)
    active = [j for j in listed if is_active(j)]
    if as_json:
        echo_json({"jobs": listed})
    elif not listed:
        if show_all:
            click.echo("no jobs; add one with 'cronkit add SCHEDULE -- COMMAND'")
        else:
            click.echo("no active jobs ('cronkit list --all' includes paused and completed ones)")
    else:
        now = datetime.now(UTC)
        zone = configured_zone()
        rows = []
        for job in listed:
            last = "-"
            if job.get("last_status"):
                last = str(job["last_status"])
                if job.get("last_run_at"):
                    last += f" {fmt_relative(to_dt(job['last_run_at']) or now, now)}"
            state = str(job.get("state"))
            if job.get("fire_claim"):
                state += ", running"
            rows.append(
                [
                    job["id"],
                    str(job.get("name")),
                    schedule_text(job),
                    fmt_next_run(job.get("next_run_at"), now=now, zone=zone),
                    last,
                    state,
                ]
            )
        echo_table(["ID", "NAME", "SCHEDULE", "NEXT RUN", "LAST", "STATE"], rows)
    if active:
        _ticker_warning(cfg)


@main.command("show")
@click.argument("job_ref", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the job as stored.")
def show_cmd(job_ref: str, as_json: bool) -> None:
    """Show one job in full."""
    cfg = checked_config()
    job = resolve_job(job_ref)
    if as_json:
        echo_json(job)
        return
    now = datetime.now(UTC)
    zone = configured_zone()
    pairs: list[tuple[str, str]] = [
        ("id", job["id"]),
        ("name", str(job.get("name"))),
        ("schedule", schedule_text(job)),
        ("action", action_text(job.get("action") or {})),
        ("cwd", str(job.get("cwd") or f"{paths.home()} (the cronkit home)")),
        *(
            [("env", " ".join(f"{k}={shlex.quote(v)}" for k, v in job["env"].items()))]
            if job.get("env")
            else []
        ),
        ("state", str(job.get("state")) + ("" if job.get("enabled", True) else " (disabled)")),
        ("next run", fmt_next_run(job.get("next_run_at"), now=now, zone=zone, empty="none")),
        (
            "last run",
            fmt_time(job.get("last_run_at"), now=now, zone=zone, empty="never")
            + (f" - {job['last_status']}" if job.get("last_status") else ""),
        ),
    ]
    if job.get("last_error"):
        pairs.append(("last error", one_line(str(job["last_error"]))))
    pairs.append(("failure streak", str(job.get("failure_streak") or 0)))
    pairs.append(("runs", repeat_text(job)))
    default_catch = cfg_get(cfg, "cron", "catch_up", default="once")
    pairs.append(
        (
            "catch-up",
            str(job["catch_up"]) if job.get("catch_up") else f"{default_catch} (config default)",
        )
    )
    if job.get("timeout") is not None:
        tmo = float(job["timeout"])
        pairs.append(("timeout", "none" if tmo == 0 else f"{tmo:g}s"))
    else:
        tmo = float(cfg_get(cfg, "cron", "job_timeout", default=600))
        pairs.append(("timeout", ("none" if tmo == 0 else f"{tmo:g}s") + " (config default)"))
    from cron.retry import policy_for

    policy = policy_for(job, cfg)
    origin = "" if job.get("retry") else " (config default)"
    pairs.append(
        (
            "retries",
            f"none{origin}"
            if policy.max <= 0
            else f"up to {policy.max}, backoff {policy.backoff:g}s doubling, at most "
            f"{policy.max_backoff:g}s{origin}",
        )
    )
    if job.get("key"):
        pairs.append(("key", str(job["key"])))
    if job.get("state") == JobState.PAUSED:
        reason = job.get("paused_reason") or "no reason given"
        pairs.append(("paused", f"{fmt_time(job.get('paused_at'), now=now, zone=zone)}: {reason}"))
    claim = job.get("fire_claim")
    if claim:
        pairs.append(
            (
                "running",
                f"claimed {fmt_time(claim.get('at'), now=now, zone=zone)} "
                f"by {claim.get('by')} for slot "
                f"{fmt_time(claim.get('scheduled_at'), zone=zone, relative=False)}",
            )
        )
        if claim.get("attempt"):
            pairs.append(
                (
                    "attempt",
                    f"{claim['attempt']} (retry; starts "
                    f"{fmt_time(claim.get('retry_at'), now=now, zone=zone)})",
                )
            )
    pairs.append(("created", fmt_time(job.get("created_at"), now=now, zone=zone)))
    from cron.output import list_outputs, read_output

    outputs = list_outputs(job["id"])
    if outputs:
        pairs.append(("last output", str(outputs[-1])))
    echo_kv(pairs)
    if outputs:
        lines = read_output(outputs[-1]).splitlines()
        if lines:
            click.echo("")
            shown = lines[-10:]
            if len(lines) > len(shown):
                click.echo(f"  ... ({len(lines) - len(shown)} earlier lines)")
            for text in shown:
                click.echo(f"  | {text}")


# -- edit / pause / resume / remove ---------------------------------------------------------------


@main.command("edit")
@click.argument("job_ref", metavar="ID")
@click.option("--schedule", help="New schedule text (recomputes the next run).")
@click.option("--name", help="New name.")
@click.option("--command", help="New shell command line.")
@click.option("--python", "target", metavar="PKG.MOD:FUNC", help="New Python target.")
@click.option("--repeat", metavar="N|forever", help="Total number of runs, or 'forever'.")
@click.option("--tz", metavar="ZONE", help="Zone for a cron expression ('' = configured zone).")
@click.option(
    "--catch-up",
    type=click.Choice(["once", "skip", "default"]),
    help="Missed-run policy ('default' = config).",
)
@click.option("--timeout", metavar="S|default", help="Run timeout in seconds (0 = none).")
@click.option(
    "--cwd", "cwd", metavar="DIR", help="Directory the job runs in ('' = the cronkit home)."
)
@click.option(
    "--env",
    "env_pairs",
    metavar="NAME=VALUE",
    multiple=True,
    help="Set (or replace) one environment variable (repeatable).",
)
@click.option("--clear-env", is_flag=True, help="Remove the job's environment variables first.")
@click.option(
    "--retries", metavar="N|default", help="Retries of a failed slot ('default' = cron.retry.max)."
)
@click.option(
    "--retry-backoff",
    metavar="DURATION|default",
    help="Wait before the first retry, doubling after ('default' = config).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the updated job as JSON.")
def edit_cmd(
    job_ref: str,
    schedule: str | None,
    name: str | None,
    command: str | None,
    target: str | None,
    repeat: str | None,
    tz: str | None,
    catch_up: str | None,
    timeout: str | None,
    cwd: str | None,
    env_pairs: tuple[str, ...],
    clear_env: bool,
    retries: str | None,
    retry_backoff: str | None,
    as_json: bool,
) -> None:
    """Change a job's fields; the rest stay as they are."""
    checked_config(store=True)
    if command is not None and target is not None:
        raise click.UsageError("give either --command or --python, not both")
    changes: dict[str, Any] = {}
    if schedule is not None:
        changes["schedule"] = schedule
    if name is not None:
        changes["name"] = name
    if command is not None:
        changes["action"] = {"kind": "command", "command": command}
    if target is not None:
        changes["action"] = {"kind": "python", "target": target}
    given, times = parse_repeat(repeat)
    if given:
        changes["repeat"] = times
    if tz is not None:
        changes["tz"] = tz
    if catch_up is not None:
        changes["catch_up"] = None if catch_up == "default" else catch_up
    given, seconds = parse_timeout(timeout, allow_default=True)
    if given:
        changes["timeout"] = seconds
    if cwd is not None:
        changes["cwd"] = cwd_option(cwd) or None
    env_set = parse_env(env_pairs)
    retry_given, retry_keys = parse_retry(retries, retry_backoff, allow_default=True)
    if not changes and not env_set and not clear_env and not retry_given:
        raise click.UsageError(
            "nothing to change: give at least one of --schedule, --name, --command, --python, "
            "--repeat, --tz, --catch-up, --timeout, --cwd, --env, --clear-env, --retries, "
            "--retry-backoff"
        )
    job = resolve_job(job_ref)
    if env_set or clear_env:
        changes["env"] = {**({} if clear_env else dict(job.get("env") or {})), **env_set}
    from cron import jobs

    if retry_given:
        merged = {**(job.get("retry") or {}), **retry_keys}
        merged = {k: v for k, v in merged.items() if v is not None}
        changes["retry"] = merged or None

    updated = jobs.update_job(job["id"], **changes)
    if as_json:
        echo_json(updated)
        return
    click.echo(f"updated job {job_label(updated)}")
    echo_kv(
        [
            ("schedule", schedule_text(updated)),
            ("state", str(updated.get("state"))),
            ("next run", fmt_time(updated.get("next_run_at"), empty="none")),
        ],
        indent="  ",
    )


@main.command("pause")
@click.argument("job_ref", metavar="ID")
@click.option("--reason", help="Why (shown by 'show').")
def pause_cmd(job_ref: str, reason: str | None) -> None:
    """Stop a job firing until it is resumed."""
    checked_config(store=True)
    job = resolve_job(job_ref)
    from cron import jobs

    paused = jobs.pause_job(job["id"], reason=reason)
    click.echo(f"paused job {job_label(paused)}" + (f": {reason}" if reason else ""))


@main.command("resume", short_help="Fire a paused job again (no burst of missed runs).")
@click.argument("job_ref", metavar="ID")
def resume_cmd(job_ref: str) -> None:
    """Fire a paused job again, from its next slot after now (no burst of missed runs)."""
    checked_config(store=True)
    job = resolve_job(job_ref)
    from cron import jobs

    resumed = jobs.resume_job(job["id"])
    if resumed.get("state") == JobState.COMPLETED:
        click.echo(
            f"job {job_label(resumed)} is completed: "
            f"{resumed.get('last_error') or 'its last run time has passed'}"
        )
        return
    click.echo(
        f"resumed job {job_label(resumed)}; next run "
        f"{fmt_time(resumed.get('next_run_at'), empty='none')}"
    )


@main.command("remove")
@click.argument("job_ref", metavar="ID")
def remove_cmd(job_ref: str) -> None:
    """Delete a job (its history and output files are kept)."""
    checked_config(store=True)
    job = resolve_job(job_ref)
    from cron import jobs

    if not jobs.remove_job(job["id"]):
        raise JobNotFoundError(job["id"])
    click.echo(f"removed job {job_label(job)}")
