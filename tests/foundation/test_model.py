"""The shared model (``cron.model``): enums, status sets, the one timestamp text, ``is_active``.

The enum values are the SPEC's lists, so JSON, the goldens and the ledger stay the
same bytes; ``parse_ts`` and ``format_ts`` are each other's inverse; ``Job`` names
every field ``create_job`` writes.
"""

from __future__ import annotations

import ast
import json
import re
import types
import typing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import cron
from cron import jobs
from cron.model import (
    EVENT_STATUSES,
    FINAL_STATUSES,
    LIVE_STATUSES,
    RAN_STATUSES,
    Job,
    JobState,
    RunStatus,
    format_ts,
    is_active,
    parse_optional_ts,
    parse_ts,
)

ROOT = Path(cron.__file__).parent

# SPEC §3: `state` (`scheduled` | `paused` | `completed` | `error`).
SPEC_STATES = {"scheduled", "paused", "completed", "error"}
# SPEC §5: status (claimed|running|ok|error|timeout|interrupted|missed|skipped|unknown).
SPEC_STATUSES = {
    "claimed",
    "running",
    "ok",
    "error",
    "timeout",
    "interrupted",
    "missed",
    "skipped",
    "unknown",
}
# SPEC §13: a slot's final outcome is one of these.
SPEC_FINAL = {"ok", "error", "timeout", "interrupted", "unknown", "missed", "skipped"}
# SPEC §3: `last_status` (`ok` | `error` | `timeout` | `interrupted` | `missed` | `skipped`).
SPEC_LAST_STATUS = {"ok", "error", "timeout", "interrupted", "missed", "skipped"}

# What cronkit writes: UTC with "+00:00", microseconds only when non-zero.
CANONICAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00")


def test_enum_values_are_the_spec_lists() -> None:
    assert {s.value for s in JobState} == SPEC_STATES
    assert {s.value for s in RunStatus} == SPEC_STATUSES


def test_status_sets_partition_the_statuses_as_the_spec_does() -> None:
    assert FINAL_STATUSES == SPEC_FINAL
    assert LIVE_STATUSES == {"claimed", "running"}
    assert FINAL_STATUSES | LIVE_STATUSES == set(RunStatus)
    assert not FINAL_STATUSES & LIVE_STATUSES
    assert EVENT_STATUSES == {"missed", "skipped"} and EVENT_STATUSES <= FINAL_STATUSES
    assert RAN_STATUSES == set(RunStatus) - {"missed", "skipped"}
    assert SPEC_LAST_STATUS <= FINAL_STATUSES


def test_a_member_is_its_string_on_disk() -> None:
    # StrEnum: JSON, format() and == see the plain value, so using one changes no byte.
    text = json.dumps({"state": JobState.PAUSED, "s": RunStatus.OK})
    assert text == '{"state": "paused", "s": "ok"}'
    assert f"{RunStatus.TIMEOUT}" == str(RunStatus.TIMEOUT) == "timeout"
    assert RunStatus("missed") is RunStatus.MISSED and JobState.ERROR == "error"


# Real instants, seen in any zone (a wall time inside a DST gap names no instant, and
# PEP 495 makes it compare unequal to every instant, so it cannot round-trip).
instants = st.builds(
    lambda t, zone: t.replace(tzinfo=UTC).astimezone(zone),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.timezones(),
)


@given(instants)
def test_parse_inverts_format(dt: datetime) -> None:
    text = format_ts(dt)
    assert CANONICAL.fullmatch(text), text
    back = parse_ts(text)
    assert back == dt and back.tzinfo is UTC
    assert format_ts(back) == text


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
def test_naive_is_utc_both_ways(naive: datetime) -> None:
    text = format_ts(naive)
    assert text == format_ts(naive.replace(tzinfo=UTC))
    assert parse_ts(naive.isoformat()) == naive.replace(tzinfo=UTC)
    assert parse_ts(text) == naive.replace(tzinfo=UTC)


def test_format_matches_the_goldens() -> None:
    # The shapes the characterization goldens hold: whole seconds, and microseconds.
    assert format_ts(datetime(2025, 3, 30, 1, 0, tzinfo=UTC)) == "2025-03-30T01:00:00+00:00"
    assert (
        format_ts(datetime(2025, 3, 30, 3, 0, 0, 250, tzinfo=timezone(timedelta(hours=2))))
        == "2025-03-30T01:00:00.000250+00:00"
    )
    assert parse_ts("2025-03-30T03:00:00+02:00") == datetime(2025, 3, 30, 1, tzinfo=UTC)


@given(st.text(max_size=40))
def test_bad_text_is_one_line_value_error_naming_it(text: str) -> None:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        return  # a timestamp after all (Hypothesis finds "2000-01-01" shapes rarely)
    with pytest.raises(ValueError) as info:
        parse_ts(text)
    message = str(info.value)
    assert "\n" not in message and repr(text) in message


@pytest.mark.parametrize("bad", ["tomorrow", "2025-13-01T00:00:00+00:00", "", " 2025-01-01"])
def test_bad_text_examples(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        parse_ts(bad)


def test_a_stored_field_is_none_when_unset_and_raises_when_corrupt() -> None:
    for unset in (None, "", 0, {}):
        assert parse_optional_ts(unset) is None
    assert parse_optional_ts("2025-01-01T00:00:00+00:00") == datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="'not a time'"):
        parse_optional_ts("not a time")


@pytest.mark.parametrize(
    ("fields", "active"),
    [
        ({"state": "scheduled"}, True),
        ({"state": "scheduled", "enabled": True}, True),
        ({"state": "scheduled", "enabled": False}, False),
        ({"state": "paused", "enabled": False}, False),
        ({"state": "paused"}, False),
        ({"state": "completed"}, False),
        ({"state": "error"}, False),
        ({}, False),
    ],
)
def test_is_active_is_enabled_and_scheduled(fields: dict[str, object], active: bool) -> None:
    assert is_active({"id": "a", **fields}) is active  # type: ignore[arg-type]


def test_job_names_every_field_create_job_writes(home: Path, tmp_path: Path) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    plain = jobs.create_job("every 1h", "true", now=now)
    full = jobs.create_job(
        "0 9 * * *",
        "echo hi",
        key="k",
        name="full",
        tz="Europe/Berlin",
        catch_up="skip",
        timeout=5,
        retry=2,
        cwd=str(tmp_path),
        env={"A": "1"},
        now=now,
    )
    hints = typing.get_type_hints(Job)
    for job in (plain, full):
        assert set(job) <= set(hints), set(job) - set(hints)
        for name, value in job.items():
            expected = hints[name]
            members = (
                typing.get_args(expected)
                if typing.get_origin(expected) in (typing.Union, types.UnionType)
                else (expected,)
            )
            allowed = tuple(typing.get_origin(t) or t for t in members)
            if float in allowed:
                allowed += (int,)  # an int is a float where a type says so (PEP 484)
            assert isinstance(value, allowed), (name, value, expected)
    assert {"key", "catch_up", "timeout", "retry", "cwd", "env"} <= set(full)
    assert full["state"] == JobState.SCHEDULED and is_active(full)


def _module_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def test_the_model_is_a_leaf() -> None:
    imported = _module_imports(ROOT / "model.py")
    assert not {m for m in imported if m == "cron" or m.startswith("cron.")}


@pytest.mark.parametrize("module", ["fmt.py", "explain.py", "model.py"])
def test_below_the_cli_nothing_imports_it(module: str) -> None:
    # Function-local imports included: a layer under the CLI must not reach up into it.
    imported = _module_imports(ROOT / module)
    assert not {m for m in imported if m.startswith("cron.cli") or m == "click"}
