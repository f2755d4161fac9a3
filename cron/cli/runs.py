"""The run verbs: ``run``, ``fire``, ``tick``, ``next``, ``history``, ``logs``."""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import click

from cron.cli._app import main
from cron.cli._common import checked_config, resolve_job, warn_six_fields
from cron.cli._errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CliError,
    echo_err,
    fail,
    ledger_location,
)
from cron.cli._format import (
    configured_zone,
    echo_json,
    echo_table,
    fmt_offset,
    fmt_time,
    job_label,
    one_line,
    to_dt,
    zone_name,
)
from cron.config import cfg_get
from cron.errors import CronkitError, JobNotFoundError
from cron.model import LIVE_STATUSES, JobState, RunStatus


def _ledger_exists() -> bool:
    # Reading history must not create a ledger: only look if it is there (a file, or a
    # database store's schema: the ledger's location is then a URL, not a path).
    from cron.store import get_store

    try:
        ledger = get_store().ledger()
    except Exception:
        return Path(ledger_location()).exists()
    return ledger.exists()


def _ledger_has(job_id: str) -> bool:
    from cron import executions

    return bool(executions.list_executions(job_id, limit=1))


# -- run / fire / tick ----------------------------------------------------------------------------


def _run_fired(job_id: str, fired: Any, label: str, started: float) -> int:
    """Run a job this process claimed; print the outcome; 0 on success, 1 on failure."""
    from cron import executions, scheduler

    job, token = fired.job, fired.token
    if job is None or token is None:
        click.echo(f"not run: job {job_id} was removed or re-claimed before it could run")
        return EXIT_OK
    ok = scheduler.run_one_job(job)
    took = time.monotonic() - started
    row = executions.get_execution(token, attempts=True) or {}
    # A retried slot ends on its last attempt: report that row, not the first.
    for later in executions.list_executions(job_id, limit=20, attempts=True):
        if later.get("scheduled_at") == row.get("scheduled_at"):
            if int(later.get("attempt") or 1) > int(row.get("attempt") or 1):
                row = later
            break
    status = row.get("status") or (RunStatus.OK if ok else RunStatus.ERROR)
    line = f"{label} {job_label(job)}: {status} in {took:.2f}s"
    if int(row.get("attempt") or 1) > 1:
        line += f" (attempt {row['attempt']})"
    if row.get("error") and not ok:
        line += f" - {one_line(str(row['error']))}"
    click.echo(line)
    if row.get("output_path"):
        click.echo(f"output: {row['output_path']}")
    return EXIT_OK if ok else EXIT_FAILED


@main.command("run", short_help="Run a job now, synchronously, through the claim.")
@click.argument("job_ref", metavar="ID")
@click.option(
    "--via-webhook",
    is_flag=True,
    help="Sign and POST the fire to the running gateway instead of running here.",
)
@click.pass_context
def run_cmd(ctx: click.Context, job_ref: str, via_webhook: bool) -> None:
    """Run a job now, synchronously, through the claim (a paused job runs once, stays paused).

    Exit 0 if the run succeeded, 1 if it failed or could not start.
    """
    checked_config(store=True)
    job = resolve_job(job_ref)
    if via_webhook:
        ctx.exit(_post_webhook(job))
    from cron.claim import ClaimReason
    from cron.scheduler import fire_job

    started = time.monotonic()
    fired = fire_job(job["id"], force=True, source="manual")
    outcome = fired.outcome
    if outcome.token is None:
        if outcome.code is ClaimReason.COMPLETED:
            fail(
                f"job {job_label(job)} is completed; give it a new schedule with "
                f"'cronkit edit {job['id']} --schedule ...' to run it again"
            )
        if outcome.code is ClaimReason.NO_SUCH_JOB:
            raise JobNotFoundError(job["id"])
        fail(f"not run: {outcome.reason}", EXIT_FAILED)
    code = _run_fired(job["id"], fired, "ran job", started)
    if job.get("state") == JobState.PAUSED:
        click.echo("(the job stays paused)")
    ctx.exit(code)


def _post_webhook(job: dict[str, Any]) -> int:
    from cron.webhook import post_fire

    try:
        status, body = post_fire(job["id"])
    except ConnectionError as exc:
        if isinstance(exc, CronkitError):
            raise  # its message already names the problem and the fix
        fail(f"no gateway webhook answered ({exc}); start one with 'cronkit gateway'")
    detail = body.get("reason") or body.get("error") or body.get("status") or ""
    line = f"webhook: HTTP {status}" + (f" {detail}" if detail else "")
    if 200 <= status < 300:
        click.echo(
            f"{line}; job {job_label(job)} runs in the gateway ('cronkit history "
            f"{job['id']}' shows the result)"
        )
        return EXIT_OK
    if status == 409:
        click.echo(line)
        return EXIT_FAILED
    fail(
        line
        + ("; the secret in webhook_secret does not match the gateway's" if status == 401 else "")
    )


def _fire_source(cfg: dict[str, Any]) -> str:
    name = str(cfg_get(cfg, "cron", "provider", default="") or "").strip()
    from cron.scheduler_provider import BUILTIN_ALIASES, resolve_cron_scheduler

    if name.lower() in BUILTIN_ALIASES:
        return "manual"
    provider = resolve_cron_scheduler(cfg)
    return "manual" if provider.name == "builtin" else provider.name


@main.command("fire", short_help="Fire a due job as an external scheduler would.")
@click.argument("job_ref", metavar="ID")
@click.option(
    "--scheduled-at", metavar="ISO", help="The slot being fired (naive = configured zone)."
)
@click.pass_context
def fire_cmd(ctx: click.Context, job_ref: str, scheduled_at: str | None) -> None:
    """Fire a due job as an external scheduler would: a lost claim is a no-op (exit 0)."""
    cfg = checked_config(store=True)
    job = resolve_job(job_ref)
    from cron.claim import ClaimReason
    from cron.schedule import parse_instant
    from cron.scheduler import fire_job

    slot = parse_instant(scheduled_at) if scheduled_at is not None else None
    started = time.monotonic()
    fired = fire_job(job["id"], scheduled_at=slot, source=_fire_source(cfg))
    outcome = fired.outcome
    if outcome.token is None:
        if outcome.code is ClaimReason.NO_SUCH_JOB:
            raise JobNotFoundError(job["id"])
        click.echo(f"not fired: job {job_label(job)}: {outcome.reason}")
        ctx.exit(EXIT_OK)
    ctx.exit(_run_fired(job["id"], fired, "fired job", started))


@main.command("tick")
def tick_cmd() -> None:
    """Run one synchronous tick: claim every due job and run it here."""
    checked_config(store=True)
    from cron import scheduler

    count = scheduler.tick(sync=True)
    click.echo(f"tick: dispatched {count} job{'s' if count != 1 else ''}")


# -- next / history -------------------------------------------------------------------------------


def preview_times(
    text: str, count: int, tz: str | None, now: datetime
) -> tuple[dict[str, Any], tzinfo, list[datetime]]:
    """The next ``count`` fire instants of schedule ``text`` after ``now`` (interval: from now)."""
    from cron.schedule import compute_next_run, parse_schedule, resolve_zone

    zone = resolve_zone(tz) if tz else configured_zone()
    sched = parse_schedule(text, tz=tz, now=now)
    times: list[datetime] = []
    after = now
    while len(times) < count:
        nxt = compute_next_run(sched, after=after, tz=tz)
        if nxt is None:
            break
        times.append(nxt)
        after = nxt
    return sched, zone, times


@main.command("next")
@click.argument("schedule")
@click.option(
    "-n",
    "count",
    type=click.IntRange(1, 1000),
    default=5,
    show_default=True,
    help="How many fire times.",
)
@click.option("--tz", metavar="ZONE", help="Zone to read and show the times in.")
@click.option("--json", "as_json", is_flag=True, help='Print {"schedule", "zone", "times"}.')
def next_cmd(schedule: str, count: int, tz: str | None, as_json: bool) -> None:
    """Preview the next fire times of any SCHEDULE text (DST-aware)."""
    checked_config()
    now = datetime.now(UTC)
    sched, zone, times = preview_times(schedule, count, tz, now)
    warn_six_fields(sched)
    if as_json:
        echo_json(
            {
                "schedule": sched,
                "zone": zone_name(zone),
                "times": [t.astimezone(zone).isoformat() for t in times],
            }
        )
        return
    click.echo(f"schedule: {sched.get('display')}   zone: {zone_name(zone)}")
    if not times:
        click.echo("no fire times ahead (a one-shot in the past)")
        return
    width = len(str(len(times)))
    previous: str | None = None
    for i, t in enumerate(times, 1):
        local = t.astimezone(zone)
        offset = fmt_offset(local)
        note = f"   (UTC offset {previous} -> {offset})" if previous and previous != offset else ""
        click.echo(f"  {str(i).rjust(width)}. {fmt_time(t, now=now, zone=zone)}{note}")
        previous = offset


@main.command("history")
@click.argument("job_ref", metavar="[ID]", required=False)
@click.option("--limit", type=click.IntRange(1, 100000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help='Print {"executions": [...]}.')
def history_cmd(job_ref: str | None, limit: int, as_json: bool) -> None:
    """Recent runs from the ledger, newest first (all jobs, or one)."""
    checked_config()
    # A removed job's history is still in the ledger under its id.
    job_id = _job_id_for_ledger(job_ref) if job_ref is not None else None
    rows: list[dict[str, Any]] = []
    if _ledger_exists():
        from cron import executions

        rows = executions.list_executions(job_id, limit=limit, attempts=True)
    if as_json:
        echo_json({"executions": rows})
        return
    if not rows:
        click.echo("no runs recorded yet")
        return
    now = datetime.now(UTC)
    zone = configured_zone()
    table = []
    for row in rows:
        when = row.get("started_at") or row.get("claimed_at") or row.get("finished_at")
        start, end = to_dt(row.get("started_at")), to_dt(row.get("finished_at"))
        took = f"{(end - start).total_seconds():.2f}s" if start and end else "-"
        table.append(
            [
                fmt_time(when, now=now, zone=zone),
                str(row.get("job_name") or row.get("job_id")),
                str(row.get("status")),
                str(row.get("source") or "-"),
                took,
                fmt_time(row.get("scheduled_at"), zone=zone, relative=False),
                str(row.get("attempt") or 1),
                str(row.get("output_path") or "-"),
                one_line(str(row["error"])) if row.get("error") else "-",
            ]
        )
    # OUTPUT before ERROR: the path has no spaces, so the free-text error can end the line.
    echo_table(
        ["WHEN", "JOB", "STATUS", "SOURCE", "TOOK", "SLOT", "ATTEMPT", "OUTPUT", "ERROR"], table
    )


FOLLOW_POLL = 0.2
"""Seconds between looks at a followed run's output file and ledger row."""


def _job_id_for_ledger(job_ref: str) -> str:
    """The id of job ``job_ref``, or of a removed job whose rows are still in the ledger."""
    try:
        return str(resolve_job(job_ref)["id"])
    except CliError:
        if not (_ledger_exists() and _ledger_has(job_ref)):
            raise
        return job_ref


def _pick_run(job_id: str, run_ref: str | None) -> dict[str, Any]:
    """The row ``logs`` shows: ``run_ref`` (an id or a unique prefix), else the newest run."""
    from cron import executions

    rows = executions.list_executions(job_id, limit=None) if _ledger_exists() else []
    if run_ref is not None:
        ref = run_ref.strip().lower()
        if not ref:
            fail("--run needs a run id (see 'cronkit history')")
        exact = [r for r in rows if r["id"] == ref]
        found = exact or [r for r in rows if str(r["id"]).startswith(ref)]
        if len(found) > 1:
            fail(f"run {run_ref!r} matches {len(found)} runs of job {job_id}; give more of its id")
        if not found:
            fail(f"job {job_id} has no run {run_ref!r} (see 'cronkit history {job_id}')")
        return found[0]
    for row in rows:
        # Rows of slots that never ran (missed, skipped) have no output to show.
        if row.get("output_path") or row.get("status") in LIVE_STATUSES:
            return row
    raise CliError(f"job {job_id} has no run with output yet", EXIT_FAILED)


class _Follower:
    """Copies new bytes of one output file to stdout; reopens it if it is replaced."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fh: Any = None
        self.inode: int | None = None

    def pump(self) -> bool:
        """Print what is new; False while the file does not exist."""
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = None
        if self.fh is not None and inode is not None and inode != self.inode:
            # Replaced at the end of the run (its output outgrew the streaming cap):
            # what follows is the kept tail, which says so in its first line.
            self.fh.close()
            self.fh = None
        if self.fh is None:
            if inode is None:
                return False
            try:
                self.fh = open(self.path, "rb")  # noqa: SIM115 - kept open across polls
            except FileNotFoundError:
                return False
            self.inode = os.fstat(self.fh.fileno()).st_ino
        # Bytes as written: a job's output need not be valid UTF-8.
        sys.stdout.flush()
        out = getattr(sys.stdout, "buffer", None)
        while chunk := self.fh.read(65536):
            if out is not None:
                out.write(chunk)
            else:
                sys.stdout.write(chunk.decode("utf-8", "replace"))
        (out or sys.stdout).flush()
        return True

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


@main.command("logs", short_help="Print (or follow) the output of a job's run.")
@click.argument("job_ref", metavar="ID")
@click.option("-f", "--follow", is_flag=True, help="Keep printing a run in progress until it ends.")
@click.option(
    "--run",
    "run_ref",
    metavar="RUN",
    help="The run's ledger id or a unique prefix (default: the newest run).",
)
@click.pass_context
def logs_cmd(ctx: click.Context, job_ref: str, follow: bool, run_ref: str | None) -> None:
    """Print the output of the job's newest run (or of --run RUN); -f follows it while it runs.

    Exit 0 once the output is printed (with -f: once the run has ended), 1 when
    the job has no run with output yet or its file is gone, 2 on bad input.
    """
    checked_config()
    job_id = _job_id_for_ledger(job_ref)
    row = _pick_run(job_id, run_ref)
    from cron import executions

    tail: _Follower | None = None
    try:
        while True:
            # The row is read before the file: a row already final means the file is complete.
            final = row.get("status") not in LIVE_STATUSES
            path = row.get("output_path")
            if path and tail is None:
                tail = _Follower(str(path))
            present = tail.pump() if tail is not None else False
            if final or not follow:
                if not present:
                    if path:
                        raise CliError(
                            f"the output file of run {row['id']} is gone: {path} (only the newest "
                            "cron.output_retention files are kept, on the machine that ran it)",
                            EXIT_FAILED,
                        )
                    raise CliError(
                        f"run {row['id']} of job {job_id} has no output yet"
                        + ("" if follow else "; -f follows it"),
                        EXIT_FAILED,
                    )
                return
            time.sleep(FOLLOW_POLL)
            row = executions.get_execution(row["id"]) or {**row, "status": RunStatus.UNKNOWN.value}
    except KeyboardInterrupt:
        # Ctrl-C is how one stops following: one line, no traceback, the run goes on.
        echo_err("cronkit: interrupted")
        ctx.exit(EXIT_INTERRUPTED)
    finally:
        if tail is not None:
            tail.close()
