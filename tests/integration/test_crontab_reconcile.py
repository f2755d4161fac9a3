"""``reconcile`` against the real ``crontab`` binary: converge, never touch foreign lines.

Runs on a throwaway user's crontab as root (see conftest.py). Jobs are created
with a fixed ``now`` and far-off schedules, so nothing here depends on the
wall clock or on the daemon.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cron import jobs
from cron.providers.crontab import CrontabError, CrontabScheduler, table
from cron.scheduler_provider import set_active_provider
from tests.conftest import write_config
from tests.integration.conftest import CrontabTarget

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
FOREIGN = (
    "# the user's own lines, which cronkit must never touch\n"
    'MAILTO=""\n'
    "0 3 * * * /usr/local/bin/backup --all   \n"
    "\n"
    "*/5 * * * * date +\\%s >> /tmp/never-run-by-this-test\n"
)


def _lines(text: str | None) -> list[str]:
    return (text or "").split("\n")


def _fire_lines(t: CrontabTarget, home: Path) -> dict[str, str]:
    block = table.parse(t.read() or "", str(home.resolve())).block
    return table.block_job_ids(block or [])


@pytest.fixture
def provider(target: CrontabTarget, home: Path) -> CrontabScheduler:
    return target.provider(daemon_tz="UTC")


@pytest.fixture
def hooked(provider: CrontabScheduler) -> Iterator[CrontabScheduler]:
    """The provider is this process's active one: job mutations reconcile by themselves."""
    set_active_provider(provider)
    try:
        yield provider
    finally:
        set_active_provider(None)


def test_converges_through_create_edit_pause_resume_remove(
    target: CrontabTarget, hooked: CrontabScheduler, home: Path
) -> None:
    target.write(FOREIGN)
    job = jobs.create_job("0 9 * * 1-5", "true", now=NOW)
    lines = _fire_lines(target, home)
    assert list(lines) == [job["id"]]
    assert lines[job["id"]].startswith("0 9 * * 1-5 CRONKIT_HOME=")
    assert (target.read() or "").startswith(FOREIGN)
    assert hooked.in_sync()

    jobs.update_job(job["id"], schedule="30 18 * * sun", now=NOW)
    assert _fire_lines(target, home)[job["id"]].startswith("30 18 * * 0 CRONKIT_HOME=")

    other = jobs.create_job("@daily", "true", now=NOW)
    assert set(_fire_lines(target, home)) == {job["id"], other["id"]}

    jobs.pause_job(job["id"])
    assert set(_fire_lines(target, home)) == {other["id"]}
    jobs.resume_job(job["id"], now=NOW)
    assert set(_fire_lines(target, home)) == {job["id"], other["id"]}

    jobs.remove_job(job["id"])
    jobs.remove_job(other["id"])
    assert target.read() == FOREIGN  # byte for byte, block gone
    assert hooked.in_sync()


def test_sweep_line_only_while_an_inexpressible_job_exists(
    target: CrontabTarget, hooked: CrontabScheduler, home: Path
) -> None:
    cron_job = jobs.create_job("0 9 * * *", "true", now=NOW)
    assert not table.has_sweep(_lines(target.read()))
    interval = jobs.create_job("every 90s", "true", now=NOW)
    text = target.read()
    assert table.has_sweep(_lines(text))
    assert set(table.block_job_ids(_lines(text))) == {cron_job["id"]}  # no line of its own
    zoned = jobs.create_job("0 9 * * *", "true", tz="Asia/Tokyo", now=NOW)
    assert zoned["id"] not in _fire_lines(target, home)
    jobs.remove_job(interval["id"])
    assert table.has_sweep(_lines(target.read()))  # the zoned job still needs it
    jobs.remove_job(zoned["id"])
    assert not table.has_sweep(_lines(target.read()))
    assert hooked.status_detail().startswith("crontab block in sync (1 job line)")


def test_second_reconcile_changes_nothing(
    target: CrontabTarget, home: Path, counting_crontab: tuple[tuple[str, ...], Path]
) -> None:
    cmd, calls = counting_crontab
    provider = target.provider(cmd, daemon_tz="UTC")
    target.write(FOREIGN)
    jobs.create_job("15 4 * * *", "true", now=NOW)
    jobs.create_job("in 30m", "true", now=datetime.now(UTC))
    assert provider.sync() is True
    first = target.read()
    calls.write_text("")
    assert provider.sync() is False
    provider.reconcile()
    assert target.read() == first
    # Only reads: no second install, so the daemon is not even asked to reload.
    assert [c.split()[-1] for c in calls.read_text().splitlines()] == ["-l", "-l"]


def test_survives_a_hand_edited_block(
    target: CrontabTarget, provider: CrontabScheduler, home: Path
) -> None:
    target.write(FOREIGN)
    job = jobs.create_job("0 9 * * *", "true", now=NOW)
    provider.reconcile()
    good = target.read() or ""
    line = _fire_lines(target, home)[job["id"]]
    edited = good.replace(line, line.replace("0 9 * * *", "*/2 * * * *", 1))
    edited = edited.replace(table.HEADER, table.HEADER + "\n# someone's note inside the block")
    target.write(edited)
    assert not provider.in_sync()
    assert "OUT OF SYNC" in provider.status_detail()
    assert f"outdated line for {job['id']}" in provider.status_detail()
    provider.reconcile()
    assert target.read() == good


def test_survives_a_deleted_block_or_end_marker(
    target: CrontabTarget, provider: CrontabScheduler, home: Path
) -> None:
    job = jobs.create_job("0 9 * * *", "true", now=NOW)
    target.write(FOREIGN)  # as if someone deleted the whole block by hand
    assert not provider.in_sync()
    assert f"no line for {job['id']}" in provider.status_detail()
    assert "will NOT fire" in provider.status_detail()
    provider.reconcile()
    good = target.read() or ""
    assert good.startswith(FOREIGN) and provider.in_sync()

    end = table.end_marker(str(home.resolve()))
    after = "45 23 * * * /usr/bin/foreign-after-the-block\n"
    target.write(good.replace(end + "\n", "") + after)  # END lost, a foreign line added after
    assert not provider.in_sync()
    provider.reconcile()
    assert target.read() == good + after
    assert provider.in_sync()


def test_two_homes_share_one_crontab(
    target: CrontabTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    target.write(FOREIGN)
    a = target.provider(daemon_tz="UTC")
    job_a = jobs.create_job("0 1 * * *", "true", now=NOW)
    a.reconcile()
    monkeypatch.setenv("CRONKIT_HOME", str(tmp_path / "second-home"))
    job_b = jobs.create_job("0 2 * * *", "true", now=NOW)
    b = target.provider(daemon_tz="UTC")
    b.reconcile()
    assert list(_fire_lines(target, tmp_path / "second-home")) == [job_b["id"]]
    assert list(_fire_lines(target, home)) == [job_a["id"]]
    assert b.in_sync()
    assert b.remove_block() is True
    assert _fire_lines(target, tmp_path / "second-home") == {}
    monkeypatch.setenv("CRONKIT_HOME", str(home))
    assert a.in_sync()
    jobs.remove_job(job_a["id"])
    a.reconcile()
    assert target.read() == FOREIGN


def test_every_rendered_form_is_accepted_by_crontab(
    target: CrontabTarget, provider: CrontabScheduler, home: Path
) -> None:
    exprs = [
        "* * * * *",
        "*/7 * * * *",
        "5/15 3-20/4 * * *",
        "0 0 L * *",
        "0 9 * jan-mar mon-fri",
        "0 0 */2 * 1",
        "30 6 1,15 * *",
        "0 0 * * 5-7",
        "@weekly",
        "0 12 * * * 0",
        "0 12 * * * 30",
        "59 23 31 12 *",
        "0 0 29 2 *",
    ]
    made = [jobs.create_job(e, "true", now=NOW) for e in exprs]
    provider.reconcile()  # raises CrontabError if the binary refused any line
    lines = _fire_lines(target, home)
    expected_own = {j["id"] for j in made if table.cron_fields(j["schedule"]["expr"])}
    assert set(lines) == expected_own
    assert table.has_sweep(_lines(target.read()))  # L and the 30-seconds job need it


def test_status_reports_external_and_sync(
    target: CrontabTarget,
    provider: CrontabScheduler,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cron import plugins
    from cron.status import ticker_status

    write_config(home, "cron:\n  provider: crontab\n")
    monkeypatch.setattr(plugins, "load_cron_scheduler", lambda name, **kw: provider)
    job = jobs.create_job("0 9 * * *", "true", now=NOW)
    provider.reconcile()
    st = ticker_status()
    assert (st.state, st.provider, st.exit_code) == ("external", "crontab", 0)
    assert st.detail.startswith("crontab block in sync (1 job line")
    target.write(None)
    st = ticker_status()
    assert st.state == "external"
    assert f"OUT OF SYNC: no line for {job['id']}" in st.detail


def test_a_line_cron_would_refuse_fails_before_the_crontab_is_touched(
    target: CrontabTarget, home: Path, crontab_binary: str, tmp_path: Path
) -> None:
    target.write(FOREIGN)
    jobs.create_job("0 9 * * *", "true", now=NOW)
    # The real binary agrees with the limit the renderer enforces ...
    too_long = "* * * * * " + "x" * (table.MAX_COMMAND + 10) + "\n"
    probe = CrontabTarget(crontab_binary, target.user)
    with pytest.raises(Exception):  # noqa: B017 - CalledProcessError from the real binary
        probe.write(FOREIGN + too_long)
    # ... and the provider refuses such a line itself, leaving the crontab alone.
    provider = target.provider(python="/opt/" + "p" * table.MAX_COMMAND)
    with pytest.raises(CrontabError, match="limit is 990"):
        provider.reconcile()
    assert target.read() == FOREIGN
