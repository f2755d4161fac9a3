"""What `add` and `next` say about the schedule text itself: the length limit, six fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result

from cron import jobs
from tests.cli._helpers import cli, snapshot, stderr_lines, store_state
from tests.support.stores import store_exists

SIX_FIELD_WARNING = (
    "cronkit: warning: '0 */5 * * * *' has six fields; the last is seconds, so it fires 60 "
    "times a minute (every second) in each matching minute \u2014 if the first field was meant "
    "as seconds, write '*/5 * * * *'"
)


def _warnings(result: Result) -> list[str]:
    return [line for line in stderr_lines(result) if "has six fields" in line]


# -- the length limit -----------------------------------------------------------------------------


@pytest.mark.parametrize("verb", [["add"], ["next"]])
def test_a_megabyte_schedule_is_one_short_line_exit_2(home: Path, verb: list[str]) -> None:
    huge = "0 9 * * *\n" * 100_000  # a pasted megabyte, newlines and all
    before = snapshot(home)
    args = [*verb, huge] + (["--", "true"] if verb == ["add"] else [])
    r = cli(*args)
    assert r.exit_code == 2, r.stderr[:300]
    (line,) = stderr_lines(r)
    assert line.startswith("cronkit: error: invalid schedule '0 9 * * *\\n0 9 * * *\\n")
    assert "1000000 characters, more than the 1000 allowed" in line
    assert len(line) < 600
    assert r.stdout == ""
    assert snapshot(home) == before
    assert not store_exists()


def test_a_schedule_of_exactly_1000_characters_is_added(home: Path) -> None:
    r = cli("add", "0 9 * * *".ljust(1000), "--json", "--", "true")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["schedule"]["expr"] == "0 9 * * *"
    r = cli("add", "0 9 * * *".ljust(1001), "--", "true")
    assert r.exit_code == 2
    assert len(jobs.list_jobs()) == 1


# -- six fields -----------------------------------------------------------------------------------


def test_add_warns_about_a_seconds_last_star_and_still_adds(home: Path) -> None:
    r = cli("add", "0 */5 * * * *", "--name", "oops", "--", "true")
    assert r.exit_code == 0, r.stderr
    assert _warnings(r) == [SIX_FIELD_WARNING]
    assert "has six fields" not in r.stdout
    (job,) = jobs.list_jobs()
    assert job["name"] == "oops" and job["schedule"]["expr"] == "0 */5 * * * *"


def test_add_json_keeps_stdout_clean_and_warns_on_stderr(home: Path) -> None:
    r = cli("add", "0 9 * * * 10-20", "--json", "--", "true")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["schedule"]["expr"] == "0 9 * * * 10-20"
    (warning,) = _warnings(r)
    assert "fires 11 times a minute in each matching minute" in warning


def test_next_warns_about_a_seconds_last_star(home: Path) -> None:
    r = cli("next", "0 */5 * * * *", "-n", "3")
    assert r.exit_code == 0, r.stderr
    assert _warnings(r) == [SIX_FIELD_WARNING]
    assert r.stdout.count(":00:") >= 3  # the preview still shows every-second fires
    r = cli("next", "0 */5 * * * *", "--json")
    assert r.exit_code == 0
    assert len(json.loads(r.stdout)["times"]) == 5
    assert _warnings(r) == [SIX_FIELD_WARNING]


@pytest.mark.parametrize(
    "schedule", ["*/5 * * * *", "0 9 * * * 30", "0 9 * * * 0", "@hourly", "every 5s"]
)
def test_no_warning_for_five_fields_or_fixed_seconds(home: Path, schedule: str) -> None:
    r = cli("next", schedule)
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""
    r = cli("add", schedule, "--", "true")
    assert r.exit_code == 0, r.stderr
    # The one stderr line is the usual "no ticker is running" warning.
    assert [line for line in stderr_lines(r) if "no ticker is running" not in line] == []


def test_a_refused_schedule_writes_nothing(home: Path) -> None:
    before = store_state()
    r = cli("add", "0 */5 * * * * *", "--", "true")  # seven fields
    assert r.exit_code == 2
    assert _warnings(r) == []
    assert store_state() == before
