"""The crontab provider's pure parts: what cron can express, the block, the splice.

No crontab binary and no daemon here (tests/integration has those). The one
process these tests start is /bin/sh, to prove a rendered line's quoting and
``%`` escaping survive cron's and the shell's parsing.
"""

from __future__ import annotations

import calendar
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cron.errors import ScheduleError
from cron.providers.crontab import table
from cron.schedule import compute_next_run, parse_schedule

HOME = "/home/ann/.cronkit"
INV = table.Invocation(HOME, "/usr/bin/python3")


# -- cron_fields: exactly the instants cronkit fires, in syntax every cron reads -----------


@pytest.mark.parametrize(
    ("expr", "fields"),
    [
        ("* * * * *", "* * * * *"),
        ("*/15 * * * *", "0-45/15 * * * *"),
        ("0 9 * * 1-5", "0 9 * * 1-5"),
        ("0 0 * jan-mar mon", "0 0 * 1-3 1"),
        ("0 0 * * 7", "0 0 * * 0"),
        ("0 0 * * 5-7", "0 0 * * 0,5,6"),
        ("5/15 * * * *", "5-50/15 * * * *"),  # croniter-only syntax Debian's crontab rejects
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("0 0 * * * 0", "0 0 * * *"),  # 6 fields, seconds exactly 0
        ("0 0 */2 * 1", "0 0 */2 * 1"),  # a leading '*': odd days that are Mondays, in both
        ("0 0 13 * */1", "0 0 13 * *"),  # ANDed with every day: the 13th alone
        ("0 0 13 * 5", "0 0 13 * 5"),  # no leading '*': the 13th or a Friday, in both
        ("0 0 1 * */7", "0 0 1 * */7"),  # Vixie's '*' spans 0-7 in day-of-week: Sundays
        ("0 0 1-31 * *", "0 0 * * *"),  # a full range is '*'
        ("0 0 1-31 * 1", "0 0 * * *"),  # ORed with a field that matches every day: every day
        ("5-5 1-1 * * *", "5 1 * * *"),  # one-value ranges are that value, as in cron
        ("1,2,3,7 0 ? * *", "1-3,7 0 * * *"),
        ("30 4 1,15 * *", "30 4 1,15 * *"),
    ],
)
def test_cron_fields_renders_portable_equivalent(expr: str, fields: str) -> None:
    assert table.cron_fields(expr) == fields


@pytest.mark.parametrize(
    "expr",
    [
        "0 0 * * * 30",
        "0 0 * * * */10",
        "0 0 L * *",
        "0 0 15W * *",
        "0 0 * * 5#3",
        "0 0 */10,15 * 1",  # two ANDed day sets, neither a '*/n': no single crontab line says it
        "not cron",
        "* * * *",
    ],
)
def test_cron_fields_refuses_what_cron_cannot_express(expr: str) -> None:
    assert table.cron_fields(expr) is None


def _field_values(text: str, lo: int, hi: int) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        rng, _, step = part.partition("/")
        if rng == "*":
            a, b = lo, hi
        elif "-" in rng:
            a, b = (int(x) for x in rng.split("-"))
        else:
            a = b = int(rng)
        out.update(range(a, b + 1, int(step) if step else 1))
    return out


def vixie_fires(fields: str, start: datetime, count: int) -> list[datetime]:
    """The first ``count`` minutes after ``start`` (UTC) at which Vixie cron runs ``fields``.

    An independent model of Debian's matcher: minute, hour and month must
    match; day-of-month and day-of-week are ANDed when either field *starts
    with* ``*``, ORed otherwise (cron.c: DOM_STAR / DOW_STAR).
    """
    m, h, dom, mon, dow = fields.split()
    mins, hours = _field_values(m, 0, 59), _field_values(h, 0, 23)
    doms, mons = _field_values(dom, 1, 31), _field_values(mon, 1, 12)
    dows = {d % 7 for d in _field_values(dow, 0, 7)}
    star = dom.startswith("*") or dow.startswith("*")
    out: list[datetime] = []
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    for _ in range(366 * 60):
        wd = (day.weekday() + 1) % 7  # Sunday = 0
        d_ok, w_ok = day.day in doms, wd in dows
        if day.month in mons and ((d_ok and w_ok) if star else (d_ok or w_ok)):
            for hh in sorted(hours):
                for mm in sorted(mins):
                    t = day.replace(hour=hh, minute=mm)
                    if t > start:
                        out.append(t)
                        if len(out) == count:
                            return out
        day += timedelta(days=1)
    return out


def cronkit_fires(expr: str, start: datetime, count: int) -> list[datetime]:
    sched = parse_schedule(expr)
    out: list[datetime] = []
    t: datetime | None = start
    while t is not None and len(out) < count:
        t = compute_next_run(sched, after=t, tz="UTC")
        if t is not None:
            out.append(t)
    return out


_NUM = {0: 59, 1: 23, 2: 31, 3: 12, 4: 6}


@st.composite
def cron_exprs(draw: st.DrawFn) -> str:
    fields = []
    for index in range(5):
        hi = _NUM[index]
        lo = 1 if index in (2, 3) else 0
        kind = draw(st.sampled_from(["star", "num", "range", "step", "starstep", "list", "name"]))
        if kind == "star":
            fields.append("*")
        elif kind == "num":
            fields.append(str(draw(st.integers(lo, hi))))
        elif kind == "range":
            a = draw(st.integers(lo, hi))
            fields.append(f"{a}-{draw(st.integers(a, hi))}")
        elif kind == "step":
            a = draw(st.integers(lo, hi))
            fields.append(f"{a}-{draw(st.integers(a, hi))}/{draw(st.integers(1, 12))}")
        elif kind == "starstep":
            fields.append(f"*/{draw(st.integers(1, 12))}")
        elif kind == "list":
            vals = draw(st.lists(st.integers(lo, hi), min_size=1, max_size=4, unique=True))
            fields.append(",".join(map(str, vals)))
        elif index == 3:
            fields.append(draw(st.sampled_from(["jan", "jun-aug", "dec"])))
        elif index == 4:
            fields.append(draw(st.sampled_from(["mon", "sat-sun", "7", "5-7"])))
        else:
            fields.append("*")
    return " ".join(fields)


@given(expr=cron_exprs(), start_day=st.integers(0, 3000))
def test_rendered_fields_fire_when_cronkit_does(expr: str, start_day: int) -> None:
    """Under Vixie's rules the rendered line fires at exactly cronkit's instants."""
    try:
        parse_schedule(expr)
    except ScheduleError:
        return  # e.g. Feb 30: cronkit refuses it before any crontab sees it
    fields = table.cron_fields(expr)
    assert fields is not None, expr
    start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=start_day, minutes=7)
    expected = cronkit_fires(expr, start, 12)
    assert vixie_fires(fields, start, len(expected)) == expected, (expr, fields)


# -- zones and placement ------------------------------------------------------------------


def _job(schedule: dict[str, object], **extra: object) -> dict[str, object]:
    return {
        "id": "0123456789ab",
        "schedule": schedule,
        "enabled": True,
        "state": "scheduled",
        **extra,
    }


def test_same_zone_knows_aliases() -> None:
    assert table.same_zone("UTC", "Etc/UTC")
    assert table.same_zone("Europe/Berlin", "Europe/Berlin")
    assert not table.same_zone("Europe/Berlin", "UTC")
    assert not table.same_zone("America/New_York", "America/Chicago")


@pytest.mark.parametrize(
    ("schedule", "configured", "own_line"),
    [
        ({"kind": "cron", "expr": "0 9 * * 1-5"}, "", True),
        ({"kind": "cron", "expr": "0 9 * * 1-5", "tz": "Etc/UTC"}, "", True),
        ({"kind": "cron", "expr": "0 9 * * 1-5", "tz": "Europe/Berlin"}, "", False),
        ({"kind": "cron", "expr": "0 9 * * 1-5"}, "Asia/Tokyo", False),
        ({"kind": "cron", "expr": "0 9 * * 1-5"}, "UTC", True),
        ({"kind": "cron", "expr": "0 9 * * 1-5 30"}, "", False),
        ({"kind": "interval", "seconds": 300}, "", False),
        ({"kind": "interval", "seconds": 20}, "", False),
        ({"kind": "once", "run_at": "2030-01-01T00:00:00+00:00"}, "", False),
    ],
)
def test_place_decides_line_or_sweep(
    schedule: dict[str, object], configured: str, own_line: bool
) -> None:
    placed = table.place(_job(schedule), configured_zone=configured, daemon_zone="UTC")
    assert placed.own_line is own_line
    assert (placed.fields is None) == bool(placed.reason)


def test_only_active_jobs_get_lines() -> None:
    assert table.is_active(_job({"kind": "cron", "expr": "* * * * *"}))
    assert not table.is_active(
        _job({"kind": "cron", "expr": "* * * * *"}, enabled=False, state="paused")
    )
    assert not table.is_active(_job({"kind": "once"}, state="completed"))


# -- rendering ------------------------------------------------------------------------------


def test_render_block_lines_and_sweep_only_when_needed() -> None:
    line = table.Placement("aaaaaaaaaaaa", "0 9 * * 1-5")
    swept = table.Placement("bbbbbbbbbbbb", None, "interval")
    assert table.render_block(INV, []) == []
    block = table.render_block(INV, [line])
    assert block[0] == f"# BEGIN cronkit {HOME} (managed by cronkit; do not edit)"
    assert block[-1] == f"# END cronkit {HOME}"
    assert not table.has_sweep(block)
    assert list(table.block_job_ids(block)) == ["aaaaaaaaaaaa"]
    fire = table.block_job_ids(block)["aaaaaaaaaaaa"]
    assert fire.startswith(
        "0 9 * * 1-5 CRONKIT_HOME=/home/ann/.cronkit /usr/bin/python3 -m cron "
        "fire aaaaaaaaaaaa --scheduled-at "
    )
    assert '"$(date -u +\\%Y-\\%m-\\%dT\\%H:\\%M:00+00:00)"' in fire
    assert fire.endswith(" >/dev/null 2>>/home/ann/.cronkit/cron/crontab.log")
    both = table.render_block(INV, [line, swept])
    assert table.has_sweep(both)
    assert list(table.block_job_ids(both)) == ["aaaaaaaaaaaa"]  # the swept job has no line
    assert (
        "* * * * * CRONKIT_HOME=/home/ann/.cronkit /usr/bin/python3 -m cron tick "
        ">/dev/null 2>>/home/ann/.cronkit/cron/crontab.log" in both
    )
    only_swept = table.render_block(INV, [swept])
    assert table.has_sweep(only_swept) and not table.block_job_ids(only_swept)


def test_every_percent_is_escaped_and_awkward_homes_are_quoted() -> None:
    inv = table.Invocation("/srv/odd home/100%", "/opt/py 3/bin/python", "/src/a b")
    line = inv.fire_line("* * * * *", "aaaaaaaaaaaa")
    assert "%" not in line.replace("\\%", "")
    assert "CRONKIT_HOME='/srv/odd home/100\\%'" in line
    assert "PYTHONPATH='/src/a b'" in line
    # The markers quote the home too, so "/a/b" never matches the block of "/a/b c".
    assert table.begin_marker("/srv/odd home") == (
        "# BEGIN cronkit '/srv/odd home' (managed by cronkit; do not edit)"
    )


def test_too_long_a_command_is_refused() -> None:
    inv = table.Invocation("/h/" + "x" * 900, "/usr/bin/python3")
    with pytest.raises(table.CrontabRenderError, match="limit is 990"):
        inv.fire_line("* * * * *", "aaaaaaaaaaaa")


def test_rendered_line_runs_the_right_argv_under_sh(tmp_path: Path) -> None:
    """Apply cron's ``%`` rule, hand the command to /bin/sh: the fire gets the right argv/env."""
    spy = tmp_path / "spy"
    out = tmp_path / "argv.json"
    spy.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"json.dump({{'argv': sys.argv[1:], 'home': os.environ['CRONKIT_HOME'], "
        f"'pp': os.environ.get('PYTHONPATH')}}, open({str(out)!r}, 'w'))\n",
        encoding="utf-8",
    )
    spy.chmod(0o755)
    home = tmp_path / "my home 50%"
    (home / "cron").mkdir(parents=True)
    inv = table.Invocation(str(home), str(spy), "/src/x y")
    fields_and_cmd = inv.fire_line("* * * * *", "aaaaaaaaaaaa")
    command = fields_and_cmd.split(" ", 5)[5]
    # cron: an unescaped % would end the command; "\%" becomes "%".
    assert "%" not in command.replace("\\%", "")
    subprocess.run(["/bin/sh", "-c", command.replace("\\%", "%")], check=True, timeout=30)
    got = json.loads(out.read_text())
    assert got["home"] == str(home)
    assert got["pp"] == "/src/x y"
    assert got["argv"][:5] == ["-m", "cron", "fire", "aaaaaaaaaaaa", "--scheduled-at"]
    slot = datetime.fromisoformat(got["argv"][5])
    assert slot.tzinfo is not None and slot.utcoffset() == timedelta(0)
    assert slot.second == 0
    assert abs((datetime.now(UTC) - slot).total_seconds()) < 120


# -- splicing -------------------------------------------------------------------------------

FOREIGN = (
    "# my own jobs\n"
    "MAILTO=ann@example.org\n"
    "0 3 * * * /usr/local/bin/backup --all   \n"
    "\n"
    "@reboot echo up\r\n"
    "*/5 * * * * date +\\%s >> /tmp/x\n"
)


def _block(*ids: str, inv: table.Invocation = INV) -> list[str]:
    return table.render_block(inv, [table.Placement(i, "* * * * *") for i in ids])


def test_splice_appends_then_removes_back_to_the_exact_bytes() -> None:
    added = table.splice(FOREIGN, HOME, _block("aaaaaaaaaaaa"))
    assert added.startswith(FOREIGN)
    assert added.endswith(f"# END cronkit {HOME}\n")
    assert table.splice(added, HOME, []) == FOREIGN


def test_splice_replaces_in_place_and_keeps_lines_after_the_block() -> None:
    text = "A\n" + "\n".join(_block("aaaaaaaaaaaa")) + "\nB\n"
    out = table.splice(text, HOME, _block("bbbbbbbbbbbb"))
    lines = out.split("\n")
    assert lines[0] == "A" and lines[-2] == "B" and lines[-1] == ""
    assert list(table.block_job_ids(lines)) == ["bbbbbbbbbbbb"]
    assert table.splice(out, HOME, _block("bbbbbbbbbbbb")) == out  # idempotent


def test_splice_empty_and_missing_newline() -> None:
    assert table.splice("", HOME, []) == ""
    block = _block("aaaaaaaaaaaa")
    assert table.splice("", HOME, block) == "\n".join(block) + "\n"
    assert table.splice("\n".join(block) + "\n", HOME, []) == ""
    # cron needs a final newline, so a foreign last line without one gets it
    assert table.splice("0 1 * * * x", HOME, block) == "0 1 * * * x\n" + "\n".join(block) + "\n"


def test_two_homes_coexist() -> None:
    other = table.Invocation("/home/ann/.cronkit-b", "/usr/bin/python3")
    text = table.splice(FOREIGN, HOME, _block("aaaaaaaaaaaa"))
    text = table.splice(text, other.home, _block("bbbbbbbbbbbb", inv=other))
    assert set(table.block_job_ids(text.split("\n"))) == {"aaaaaaaaaaaa", "bbbbbbbbbbbb"}
    without_a = table.splice(text, HOME, [])
    assert set(table.block_job_ids(without_a.split("\n"))) == {"bbbbbbbbbbbb"}
    assert table.splice(without_a, other.home, []) == FOREIGN


def test_prefix_homes_do_not_match_each_other() -> None:
    for other_home in ("/home/ann/.cronkit x", "/home/ann/.cronkitx"):
        other = table.Invocation(other_home, "/usr/bin/python3")
        text = table.splice("", other_home, _block("bbbbbbbbbbbb", inv=other))
        assert table.parse(text, HOME).block is None
        assert table.splice(text, HOME, []) == text


def test_begin_without_end_takes_only_its_own_lines() -> None:
    block = _block("aaaaaaaaaaaa")
    damaged = FOREIGN + "\n".join(block[:-1]) + "\n0 4 * * * foreign-after\n"
    parsed = table.parse(damaged, HOME)
    assert parsed.stray_markers == 1
    fixed = table.splice(damaged, HOME, block)
    assert fixed == FOREIGN + "\n".join(block) + "\n0 4 * * * foreign-after\n"


def test_orphan_end_and_duplicate_blocks_are_folded() -> None:
    block = _block("aaaaaaaaaaaa")
    text = f"# END cronkit {HOME}\nA\n" + "\n".join(block) + "\nB\n" + "\n".join(block) + "\n"
    parsed = table.parse(text, HOME)
    assert parsed.blocks_found == 2 and parsed.stray_markers == 1
    assert table.splice(text, HOME, block) == "A\n" + "\n".join(block) + "\nB\n"


foreign_lines = st.lists(
    st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=40
    ).filter(lambda s: "cronkit" not in s),
    max_size=8,
)


@given(
    lines=foreign_lines,
    ids=st.lists(st.sampled_from(["aaaaaaaaaaaa", "bbbbbbbbbbbb"]), max_size=2, unique=True),
)
def test_splice_never_changes_foreign_lines(lines: list[str], ids: list[str]) -> None:
    text = "".join(line + "\n" for line in lines)
    installed = table.splice(text, HOME, _block(*ids))
    assert table.splice(installed, HOME, _block(*ids)) == installed
    assert table.splice(installed, HOME, []) == text
    assert table.parse(installed, HOME).kept == text.split("\n")


# -- the provider around the table, with a stand-in crontab binary ----------------------------


def _fake_crontab(tmp_path: Path, *, fail: str | None = None) -> Path:
    """A crontab look-alike storing the table in a file (-l, -r, - from stdin)."""
    store = tmp_path / "fake-table"
    script = tmp_path / "fake-crontab"
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        f"store = {str(store)!r}\n"
        f"fail = {fail!r}\n"
        "if fail: sys.stderr.write(fail + '\\n'); sys.exit(1)\n"
        "arg = sys.argv[-1]\n"
        "if arg == '-l':\n"
        "    if not os.path.exists(store): sys.stderr.write('no crontab for t\\n'); sys.exit(1)\n"
        "    sys.stdout.write(open(store).read())\n"
        "elif arg == '-r':\n"
        "    os.remove(store)\n"
        "else:\n"
        "    open(store, 'w').write(sys.stdin.read())\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


def test_provider_round_trip_with_a_stand_in_binary(home: Path, tmp_path: Path) -> None:
    from cron import jobs
    from cron.providers.crontab import CrontabScheduler

    fake = _fake_crontab(tmp_path)
    # The daemon probe is injected: whether this machine runs cron is not the test's business.
    provider = CrontabScheduler(
        crontab_cmd=(str(fake),),
        python="/usr/bin/python3",
        pythonpath=None,
        daemon_tz="UTC",
        daemon_probe=lambda: True,
    )
    assert provider.is_available()
    assert provider.status_detail() == "no crontab block (no active jobs)"
    job = jobs.create_job("0 9 * * 1-5", "true")
    assert provider.sync() is True
    assert provider.sync() is False
    assert provider.in_sync()
    assert provider.status_detail() == "crontab block in sync (1 job line)"
    assert (home / "cron").is_dir()  # the lines' log redirect needs it
    jobs.remove_job(job["id"])
    assert provider.status_detail().startswith("crontab block OUT OF SYNC (harmless: 1 line(s)")
    provider.reconcile()
    assert not (tmp_path / "fake-table").exists()  # only our block was there: crontab removed


@pytest.mark.parametrize(
    ("probe", "warned"), [(lambda: False, True), (lambda: True, False), (lambda: None, False)]
)
def test_status_warns_only_when_no_cron_daemon_is_seen(
    home: Path, tmp_path: Path, probe: Callable[[], bool | None], warned: bool
) -> None:
    from cron import jobs
    from cron.providers.crontab import CrontabScheduler

    provider = CrontabScheduler(
        crontab_cmd=(str(_fake_crontab(tmp_path)),), daemon_tz="UTC", daemon_probe=probe
    )
    # No active job: nothing would fire anyway, so no daemon warning either way.
    assert "no cron daemon" not in provider.status_detail()
    jobs.create_job("0 9 * * *", "true")
    provider.reconcile()
    detail = provider.status_detail()
    assert detail.startswith("crontab block in sync (1 job line)")
    warning = "WARNING: no cron daemon process is running - nothing will fire"
    assert detail.endswith(warning) is warned


def test_provider_failures_are_clear_and_hooks_do_not_raise(
    home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    from cron import jobs
    from cron.providers.crontab import CrontabError, CrontabScheduler

    jobs.create_job("0 9 * * *", "true")
    fake = _fake_crontab(tmp_path, fail="crontab: permission denied (cron.allow)")
    provider = CrontabScheduler(crontab_cmd=(str(fake),))
    with pytest.raises(CrontabError, match="permission denied"):
        provider.reconcile()
    provider.on_jobs_changed()  # logged, not raised: the job change is already durable
    provider.start(threading.Event())
    assert "permission denied" in caplog.text
    assert provider.status_detail().startswith("crontab state unknown: cannot read the crontab")
    missing = CrontabScheduler(crontab_cmd=(str(tmp_path / "no-such-crontab"),))
    assert missing.is_available() is False
    with pytest.raises(CrontabError, match="no crontab binary"):
        missing.reconcile()


# A corrupt jobs.json is how this test makes the store unreadable: JSON store only.
@pytest.mark.usefixtures("json_store")
def test_corrupt_store_never_touches_the_crontab(home: Path, tmp_path: Path) -> None:
    from cron import jobs
    from cron.errors import StoreCorruptError
    from cron.providers.crontab import CrontabScheduler

    fake = _fake_crontab(tmp_path)
    provider = CrontabScheduler(crontab_cmd=(str(fake),), daemon_tz="UTC")
    jobs.create_job("0 9 * * *", "true")
    provider.reconcile()
    before = (tmp_path / "fake-table").read_text()
    (home / "cron" / "jobs.json").write_text("{not json")
    with pytest.raises(StoreCorruptError):
        provider.reconcile()
    assert (tmp_path / "fake-table").read_text() == before


def test_weekday_model_sanity() -> None:
    # The independent model numbers Sunday 0 like cron does.
    sunday = datetime(2024, 1, 7, tzinfo=UTC)
    assert calendar.day_name[sunday.weekday()] == "Sunday"
    assert vixie_fires("0 0 * * 0", sunday - timedelta(days=1), 1) == [sunday]
