"""cron.schedule: accepted and rejected forms, next-run semantics, grace, zones, DST pins."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cron.errors import ScheduleError, ScheduleTooLongError
from cron.schedule import (
    MAX_SCHEDULE_CHARS,
    compute_next_run,
    describe,
    grace_seconds,
    iter_slots,
    next_slot,
    parse_instant,
    parse_schedule,
    period_seconds,
    resolve_zone,
    seconds_per_minute,
    six_field_warning,
    to_iso,
)
from tests.conftest import write_config

BERLIN = ZoneInfo("Europe/Berlin")
TORONTO = ZoneInfo("America/Toronto")
NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)  # a Monday


@pytest.fixture(autouse=True)
def _isolated(home: Path) -> None:
    """Every test gets its own CRONKIT_HOME with TZ=UTC (see conftest)."""


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


def walk(sched: dict[str, Any], start: datetime, end: datetime, tz: Any = None) -> list[datetime]:
    out: list[datetime] = []
    t = compute_next_run(sched, after=start, tz=tz)
    while t is not None and t <= end:
        out.append(t)
        t = compute_next_run(sched, after=t, tz=tz)
    return out


# --------------------------------------------------------------------------- accepted forms


@pytest.mark.parametrize(
    ("text", "expr"),
    [
        ("0 9 * * 1-5", "0 9 * * 1-5"),
        ("  0   9 *\t* 1-5 ", "0 9 * * 1-5"),
        ("*/10 * * * * 30", "*/10 * * * * 30"),
        ("0 9 * JAN mon", "0 9 * JAN mon"),
        ("0 0 L * *", "0 0 L * *"),
        ("@hourly", "@hourly"),
        ("@daily", "@daily"),
        ("@weekly", "@weekly"),
        ("@monthly", "@monthly"),
        ("@yearly", "@yearly"),
        ("@annually", "@annually"),
        ("@midnight", "@midnight"),
        ("@DAILY", "@daily"),
    ],
)
def test_cron_forms(text: str, expr: str) -> None:
    assert parse_schedule(text) == {"kind": "cron", "expr": expr, "display": expr}


@pytest.mark.parametrize(
    ("text", "seconds", "display"),
    [
        ("every 90s", 90, "every 90s"),
        ("every 30m", 1800, "every 30m"),
        ("every 2h", 7200, "every 2h"),
        ("every 1d", 86400, "every 1d"),
        ("30m", 1800, "every 30m"),
        ("EVERY 30M", 1800, "every 30m"),
        ("every 1h30m", 5400, "every 90m"),
        ("every 1h 30m", 5400, "every 90m"),
        ("every 2 hours", 7200, "every 2h"),
        ("every 1w", 604800, "every 7d"),
        ("every 1s", 1, "every 1s"),
        ("45s", 45, "every 45s"),
    ],
)
def test_interval_forms(text: str, seconds: int, display: str) -> None:
    assert parse_schedule(text) == {"kind": "interval", "seconds": seconds, "display": display}


def test_in_duration_is_a_one_shot_from_now() -> None:
    sched = parse_schedule("in 30m", now=utc(2026, 5, 4, 10, 0, 0))
    assert sched == {
        "kind": "once",
        "run_at": "2026-05-04T10:30:00+00:00",
        "display": "once at 2026-05-04T10:30:00+00:00",
    }
    assert parse_schedule("in 2h", now=datetime(2026, 5, 4, 10, 0))["run_at"] == (
        "2026-05-04T12:00:00+00:00"
    )


def test_in_duration_defaults_to_the_current_time() -> None:
    before = datetime.now(UTC)
    run_at = parse_instant(parse_schedule("in 1h")["run_at"])
    assert before + timedelta(hours=1) <= run_at <= datetime.now(UTC) + timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "tz", "run_at"),
    [
        ("2026-12-01T09:00", "Europe/Berlin", "2026-12-01T08:00:00+00:00"),
        ("2026-12-01 09:00", "Europe/Berlin", "2026-12-01T08:00:00+00:00"),
        ("2026-07-01T09:00", "Europe/Berlin", "2026-07-01T07:00:00+00:00"),
        ("2026-12-01T09:00", None, "2026-12-01T09:00:00+00:00"),  # configured zone: UTC
        ("2026-12-01T09:00:00Z", "Europe/Berlin", "2026-12-01T09:00:00+00:00"),
        ("2026-12-01T09:00:00-05:00", None, "2026-12-01T14:00:00+00:00"),
        ("2026-12-01T09:00:00.250000+00:00", None, "2026-12-01T09:00:00.250000+00:00"),
        # A wall time in the spring-forward gap means the first instant after it,
        # one in the fall-back fold means the first pass.
        ("2026-03-29T02:30", "Europe/Berlin", "2026-03-29T01:00:00+00:00"),
        ("2026-10-25T02:30", "Europe/Berlin", "2026-10-25T00:30:00+00:00"),
    ],
)
def test_iso_timestamp_is_a_one_shot(text: str, tz: str | None, run_at: str) -> None:
    sched = parse_schedule(text, tz=tz)
    assert sched == {"kind": "once", "run_at": run_at, "display": f"once at {run_at}"}


def test_naive_iso_uses_the_configured_zone(home: Path) -> None:
    write_config(home, "cron:\n  timezone: America/Toronto\n")
    assert parse_schedule("2026-12-01T09:00")["run_at"] == "2026-12-01T14:00:00+00:00"


def test_cron_records_an_explicit_zone_name() -> None:
    assert parse_schedule("0 9 * * *", tz="Europe/Berlin")["tz"] == "Europe/Berlin"
    assert parse_schedule("0 9 * * *", tz=BERLIN)["tz"] == "Europe/Berlin"
    assert "tz" not in parse_schedule("0 9 * * *")
    assert "tz" not in parse_schedule("every 5m", tz="Europe/Berlin")


# --------------------------------------------------------------------------- dict form


def test_dict_round_trip_and_normalisation() -> None:
    for text in ("0 9 * * 1-5", "every 30m", "2026-12-01T09:00Z", "@weekly"):
        sched = parse_schedule(text)
        assert parse_schedule(sched) == sched
        assert parse_schedule(dict(sched)) is not sched
    raw = {"kind": "cron", "expr": " 0  9 * * * ", "tz": "Europe/Berlin", "junk": 1}
    assert parse_schedule(raw) == {
        "kind": "cron",
        "expr": "0 9 * * *",
        "display": "0 9 * * *",
        "tz": "Europe/Berlin",
    }
    assert parse_schedule({"kind": "interval", "seconds": 60.0})["seconds"] == 60
    assert "tz" not in parse_schedule({"kind": "cron", "expr": "0 9 * * *", "tz": ""})
    once = parse_schedule({"kind": "once", "run_at": "2026-12-01T09:00", "tz": "Europe/Berlin"})
    assert once["run_at"] == "2026-12-01T08:00:00+00:00"
    assert parse_schedule({"kind": "once", "run_at": utc(2026, 1, 1)})["run_at"] == (
        "2026-01-01T00:00:00+00:00"
    )


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"kind": "weekly"},
        {"kind": "cron"},
        {"kind": "cron", "expr": 5},
        {"kind": "cron", "expr": "0 0 30 2 *"},
        {"kind": "cron", "expr": "0 9 * * *", "tz": "Mars/Olympus"},
        {"kind": "cron", "expr": "0 9 * * *", "tz": 3},
        {"kind": "interval"},
        {"kind": "interval", "seconds": 0},
        {"kind": "interval", "seconds": -5},
        {"kind": "interval", "seconds": 1.5},
        {"kind": "interval", "seconds": True},
        {"kind": "interval", "seconds": "60"},
        {"kind": "interval", "seconds": float("nan")},
        {"kind": "interval", "seconds": float("inf")},
        {"kind": "interval", "seconds": 10**30},
        {"kind": "once"},
        {"kind": "once", "run_at": "tomorrow"},
        {"kind": "once", "run_at": 1234567890},
    ],
)
def test_bad_dicts_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_schedule(bad)
    assert repr(bad) in str(info.value)


# --------------------------------------------------------------------------- rejected forms


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "tomorrow",
        "every",
        "every 0s",
        "every 0m",
        "every -5m",
        "every 1.5h",
        "every 5",
        "every 5 fortnights",
        "every 1h1h",
        "every 99999d",
        "30",
        "in 0s",
        "in soon",
        "@reboot",
        "@every 5m",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * 32 * *",
        "* * * 13 *",
        "* * * 0 *",
        "* * * * 8",
        "* * * * * 60",
        "5-1 * * * *",
        "*/0 * * * *",
        "H * * * *",
        "H(0-29) * * * *",
        "R * * * *",
        "0 9 * * monday",
        "0 9 * FOO *",
        "0 9 * * * * 2030",
        "0 9 * *",
        "1.5 * * * *",
        "-1 * * * *",
        "1,,2 * * * *",
        "0 0 30 2 *",
        "0 0 31 4,6,9,11 *",
        "2026-13-01T09:00",
        "2026-12-01T25:00",
    ],
)
def test_rejected_text(text: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_schedule(text)
    message = str(info.value)
    assert repr(text) in message
    assert "accepted forms" in message
    assert isinstance(info.value, ValueError)


def test_never_firing_expression_says_so() -> None:
    with pytest.raises(ScheduleError, match="never fires"):
        parse_schedule("0 0 30 2 *")


@pytest.mark.parametrize("obj", [None, 5, 1.5, b"0 9 * * *", ["0 9 * * *"], object()])
def test_non_text_inputs_are_rejected(obj: object) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(obj)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- cron semantics


@pytest.mark.parametrize("dow", ["0", "7", "sun", "SUN"])
def test_day_of_week_zero_and_seven_are_sunday(dow: str) -> None:
    nxt = compute_next_run(parse_schedule(f"0 9 * * {dow}"), after=NOW, tz="UTC")
    assert nxt == utc(2026, 5, 10, 9, 0)
    assert nxt.weekday() == 6


def test_month_and_day_names() -> None:
    sched = parse_schedule("0 9 1 JAN *")
    assert compute_next_run(sched, after=NOW, tz="UTC") == utc(2027, 1, 1, 9, 0)
    sched = parse_schedule("30 8 * * mon-fri")
    assert compute_next_run(sched, after=utc(2026, 5, 8, 9, 0), tz="UTC") == utc(2026, 5, 11, 8, 30)


def test_day_of_month_and_day_of_week_are_ored() -> None:
    # Classic cron: both restricted -> either may match (the 13th OR a Friday).
    sched = parse_schedule("0 0 13 * 5")
    fires = walk(sched, utc(2026, 4, 30, 23), utc(2026, 5, 31, 23, 59), tz="UTC")
    assert [f.day for f in fires] == [1, 8, 13, 15, 22, 29]


def test_a_day_field_starting_with_star_is_unrestricted() -> None:
    # Vixie cron (cron.c DOM_STAR/DOW_STAR): '*/1' starts with '*', so the day
    # fields are ANDed - the 13th only, not "the 13th or any day".
    after = utc(2024, 1, 1)
    sched = parse_schedule("0 0 13 * */1", tz="UTC")
    assert compute_next_run(sched, after=after) == utc(2024, 1, 13)
    assert compute_next_run(sched, after=utc(2024, 1, 13)) == utc(2024, 2, 13)


def test_star_step_day_of_month_and_a_weekday_are_anded() -> None:
    # '*/2' starts with '*': odd days of the month that are Mondays (2024-01-15),
    # not odd days or Mondays (2024-01-03).
    sched = parse_schedule("0 0 */2 * 1", tz="UTC")
    fires = walk(sched, utc(2024, 1, 1), utc(2024, 3, 31))
    assert fires == [
        utc(2024, 1, 15),
        utc(2024, 1, 29),
        utc(2024, 2, 5),
        utc(2024, 2, 19),
        utc(2024, 3, 11),
        utc(2024, 3, 25),
    ]
    assert all(f.day % 2 == 1 and f.weekday() == 0 for f in fires)


@pytest.mark.parametrize(
    ("expr", "days"),
    [
        # No leading '*' on either: either may match, even when one covers every day.
        ("0 0 1-31 * 1", list(range(1, 15))),
        ("0 0 1-7 * 0-7", list(range(1, 15))),
        ("0 0 1-31 * 1,*/2", list(range(1, 15))),  # a '*' later in the field does not count
        # A leading '*' on either, even inside a list: both must match.
        ("0 0 *,13 * 5", [5, 12]),
        ("0 0 13 * *,1", [13]),
        ("0 0 ? * 1", [1, 8]),  # '?' means no specific day: read as '*'
        # A side that can never match (the 31st of February) adds nothing to an OR.
        ("0 0 31 2 1", []),
        # croniter's extensions follow the same rule: the 13th or the third Friday.
        ("0 0 13 * 5#3", [13]),
        ("0 0 */2 * 5#3", []),  # ANDed: the third Friday of January 2024 is the 19th
    ],
)
def test_day_rule_cases(expr: str, days: list[int]) -> None:
    fires = walk(parse_schedule(expr, tz="UTC"), utc(2023, 12, 31), utc(2024, 1, 14, 23, 59))
    assert [f.day for f in fires] == days


def test_third_friday_on_an_odd_day() -> None:
    sched = parse_schedule("0 0 */2 * 5#3", tz="UTC")
    assert compute_next_run(sched, after=utc(2024, 1, 1)) == utc(2024, 1, 19)
    assert compute_next_run(sched, after=utc(2024, 1, 19)) == utc(2024, 3, 15)  # Feb 16 is even


def test_day_fields_that_can_never_meet_are_refused() -> None:
    # The 1st, 9th, 17th or 25th is never a fifth Monday (29th-31st).
    with pytest.raises(ScheduleError, match="never fires"):
        parse_schedule("0 0 */8 * 1#5")
    with pytest.raises(ScheduleError, match="never fires"):
        parse_schedule("0 0 30 2 */1")


def test_one_value_ranges_mean_that_value() -> None:
    # croniter alone would read "5-5" as a wrap-around over the whole hour.
    for text in ("5-5 * * * *", "5-5/2 * * * *"):
        sched = parse_schedule(text)
        assert sched["expr"] == text
        assert compute_next_run(sched, after=NOW, tz="UTC") == utc(2026, 5, 4, 10, 5)
        assert compute_next_run(sched, after=utc(2026, 5, 4, 10, 5), tz="UTC") == utc(
            2026, 5, 4, 11, 5
        )


def test_no_representable_next_run_is_none() -> None:
    end = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    assert compute_next_run(parse_schedule("0 9 * * *"), after=end, tz="UTC") is None
    assert compute_next_run(parse_schedule("every 1d"), after=end) is None


def test_six_fields_have_seconds_last() -> None:
    sched = parse_schedule("*/10 * * * * 30")
    after = utc(2026, 5, 4, 10, 0, 30)
    assert compute_next_run(sched, after=after, tz="UTC") == utc(2026, 5, 4, 10, 10, 30)
    every_second = parse_schedule("* * * * * *")
    assert compute_next_run(every_second, after=after, tz="UTC") == utc(2026, 5, 4, 10, 0, 31)


def test_strictly_after() -> None:
    sched = parse_schedule("0 9 * * *")
    slot = utc(2026, 5, 4, 9, 0)
    assert compute_next_run(sched, after=slot, tz="UTC") == utc(2026, 5, 5, 9, 0)
    assert compute_next_run(sched, after=slot - timedelta(microseconds=1), tz="UTC") == slot
    assert compute_next_run(sched, after=slot + timedelta(microseconds=1), tz="UTC") == utc(
        2026, 5, 5, 9, 0
    )


def test_naive_after_is_utc_and_results_are_aware_utc() -> None:
    nxt = compute_next_run(parse_schedule("0 9 * * *"), after=datetime(2026, 5, 4, 10), tz="UTC")
    assert nxt == utc(2026, 5, 5, 9, 0)
    assert nxt.tzinfo is UTC


def test_aliases_fire_where_expected() -> None:
    cases = {
        "@hourly": utc(2026, 5, 4, 11, 0),
        "@daily": utc(2026, 5, 5),
        "@midnight": utc(2026, 5, 5),
        "@weekly": utc(2026, 5, 10),
        "@monthly": utc(2026, 6, 1),
        "@yearly": utc(2027, 1, 1),
        "@annually": utc(2027, 1, 1),
    }
    for text, expected in cases.items():
        assert compute_next_run(parse_schedule(text), after=NOW, tz="UTC") == expected, text


def test_zone_precedence_schedule_tz_then_argument_then_config(home: Path) -> None:
    sched = parse_schedule("0 9 * * *")
    assert compute_next_run(sched, after=NOW) == utc(2026, 5, 5, 9)  # TZ=UTC
    assert compute_next_run(sched, after=NOW, tz="Europe/Berlin") == utc(2026, 5, 5, 7)
    own = {**sched, "tz": "America/Toronto"}
    assert compute_next_run(own, after=NOW, tz="Europe/Berlin") == utc(2026, 5, 4, 13)
    write_config(home, "cron:\n  timezone: Europe/Berlin\n")
    assert compute_next_run(sched, after=NOW) == utc(2026, 5, 5, 7)


def test_once() -> None:
    sched = parse_schedule("2026-06-01T00:00Z")
    assert compute_next_run(sched, after=NOW) == utc(2026, 6, 1)
    assert compute_next_run(sched, after=utc(2026, 6, 1)) is None
    assert compute_next_run(sched, after=utc(2026, 7, 1)) is None
    assert next_slot(sched, slot=None, now=NOW) is None


def test_interval_next_run_and_anchoring() -> None:
    sched = parse_schedule("every 30m")
    assert compute_next_run(sched, after=NOW) == NOW + timedelta(minutes=30)
    slot = utc(2026, 5, 4, 9, 0)
    # Ran late (finished 09:47): the next slot stays on the :00/:30 grid.
    assert next_slot(sched, slot=slot, now=utc(2026, 5, 4, 9, 47, 13)) == utc(2026, 5, 4, 10, 0)
    # Exactly on a grid point: strictly after, so the following one.
    assert next_slot(sched, slot=slot, now=utc(2026, 5, 4, 10, 0)) == utc(2026, 5, 4, 10, 30)
    # Down for a day: no burst, the phase is kept.
    assert next_slot(sched, slot=slot, now=utc(2026, 5, 5, 11, 5)) == utc(2026, 5, 5, 11, 30)
    assert next_slot(sched, slot=None, now=NOW) == NOW + timedelta(minutes=30)
    future = utc(2026, 5, 4, 10, 20)
    assert next_slot(sched, slot=future, now=NOW) == future


def test_interval_chain_does_not_drift() -> None:
    sched = parse_schedule("every 7s")
    start = utc(2026, 1, 1)
    slot = start
    for _ in range(10_000):
        # Each run "finishes" a jittery 3.3 s after its slot.
        slot = next_slot(sched, slot=slot, now=slot + timedelta(seconds=3.3)) or start
    assert slot == start + timedelta(seconds=7 * 10_000)


def test_next_slot_for_cron_is_next_run_after_now() -> None:
    sched = parse_schedule("0 9 * * *")
    assert next_slot(sched, slot=utc(2026, 5, 1, 9), now=NOW, tz="UTC") == utc(2026, 5, 5, 9)


def test_iter_slots() -> None:
    cron = parse_schedule("0 */6 * * *")
    assert iter_slots(cron, start=utc(2026, 5, 4, 6), end=utc(2026, 5, 5, 6), tz="UTC") == [
        utc(2026, 5, 4, 6),
        utc(2026, 5, 4, 12),
        utc(2026, 5, 4, 18),
        utc(2026, 5, 5, 0),
        utc(2026, 5, 5, 6),
    ]
    assert len(iter_slots(cron, start=utc(2026, 1, 1), end=utc(2027, 1, 1), limit=7)) == 7
    interval = parse_schedule("every 2h")
    assert iter_slots(interval, start=NOW, end=NOW + timedelta(hours=5)) == [
        NOW,
        NOW + timedelta(hours=2),
        NOW + timedelta(hours=4),
    ]
    once = parse_schedule("2026-06-01T00:00Z")
    assert iter_slots(once, start=NOW, end=utc(2026, 7, 1)) == [utc(2026, 6, 1)]
    assert iter_slots(once, start=utc(2026, 6, 2), end=utc(2026, 7, 1)) == []
    assert iter_slots(interval, start=NOW, end=NOW - timedelta(seconds=1)) == []


# --------------------------------------------------------------------------- grace and period


@pytest.mark.parametrize(
    ("text", "grace"),
    [
        ("every 1m", 120.0),
        ("every 1h", 1800.0),
        ("every 1d", 7200.0),
        ("every 6m", 180.0),
        ("*/5 * * * *", 150.0),
        ("0 * * * *", 1800.0),
        ("0 9 * * *", 7200.0),
        ("2026-06-01T00:00Z", 120.0),
    ],
)
def test_grace_clamps(text: str, grace: float) -> None:
    assert grace_seconds(parse_schedule(text), now=NOW, tz="UTC") == grace


def test_period() -> None:
    assert period_seconds(parse_schedule("every 90s")) == 90
    assert period_seconds(parse_schedule("0 9 * * 1-5"), now=NOW, tz="UTC") == 86400
    # Friday -> Monday.
    friday = utc(2026, 5, 8, 8)
    assert period_seconds(parse_schedule("0 9 * * 1-5"), now=friday, tz="UTC") == 3 * 86400
    assert period_seconds(parse_schedule("in 5m", now=NOW)) is None


def test_describe() -> None:
    assert describe(parse_schedule("every 30m")) == "every 30m"
    assert describe({"kind": "interval", "seconds": 3600}) == "every 1h"
    assert describe({"kind": "cron", "expr": "0 9 * * *"}) == "0 9 * * *"


# --------------------------------------------------------------------------- instants, zones


def test_to_iso_and_parse_instant() -> None:
    assert to_iso(utc(2026, 5, 4, 10)) == "2026-05-04T10:00:00+00:00"
    assert to_iso(utc(2026, 5, 4, 10, 0, 0, 5)) == "2026-05-04T10:00:00.000005+00:00"
    assert to_iso(datetime(2026, 5, 4, 12, tzinfo=BERLIN)) == "2026-05-04T10:00:00+00:00"
    assert to_iso(datetime(2026, 5, 4, 10)) == "2026-05-04T10:00:00+00:00"
    assert parse_instant("2026-05-04T10:00:00+00:00") == utc(2026, 5, 4, 10)
    assert parse_instant("2026-05-04T12:00", tz="Europe/Berlin") == utc(2026, 5, 4, 10)
    assert parse_instant(datetime(2026, 5, 4, 12, tzinfo=BERLIN)) == utc(2026, 5, 4, 10)
    assert parse_instant(datetime(2026, 5, 4, 12), tz=BERLIN) == utc(2026, 5, 4, 10)
    for dt in (NOW, utc(2026, 5, 4, 10, 0, 0, 123456)):
        assert parse_instant(to_iso(dt)) == dt
    with pytest.raises(ScheduleError):
        parse_instant("not a time")


def test_resolve_zone_order(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_zone("Europe/Berlin") == BERLIN
    fixed = timezone(timedelta(hours=3))
    assert resolve_zone(fixed) is fixed
    assert resolve_zone(None, {"cron": {"timezone": "America/Toronto"}}) == TORONTO
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    assert resolve_zone() == ZoneInfo("Asia/Kolkata")
    monkeypatch.setenv("TZ", ":Europe/Berlin")
    assert resolve_zone() == BERLIN
    write_config(home, "cron:\n  timezone: America/Toronto\n")
    assert resolve_zone() == TORONTO
    write_config(home, "cron: [broken\n")  # unparsable config: silently falls back to $TZ
    assert resolve_zone() == BERLIN
    monkeypatch.setenv("TZ", "Not/AZone")  # ignored: falls through to the system zone
    assert isinstance(resolve_zone(), tzinfo)


def test_resolve_zone_rejects_unknown_names() -> None:
    with pytest.raises(ScheduleError, match="unknown time zone") as info:
        resolve_zone("Mars/Olympus")
    assert "'Mars/Olympus'" in str(info.value)
    with pytest.raises(ScheduleError):
        parse_schedule("0 9 * * *", tz="Mars/Olympus")


# --------------------------------------------------------------------------- DST pins


def _local_fires(expr: str, zone: ZoneInfo, day: date) -> list[datetime]:
    """All fires whose local date is ``day`` (wall clock in ``zone``)."""
    sched = parse_schedule(expr)
    start = datetime.combine(day - timedelta(days=1), time(12), zone)
    end = datetime.combine(day + timedelta(days=1), time(12), zone)
    return [
        f.astimezone(zone)
        for f in walk(sched, start, end, tz=zone)
        if f.astimezone(zone).date() == day
    ]


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        (BERLIN, date(2026, 3, 29)),
        (BERLIN, date(2026, 10, 25)),
        (TORONTO, date(2026, 3, 8)),
        (TORONTO, date(2026, 11, 1)),
    ],
)
def test_daily_0900_across_dst_changes(zone: ZoneInfo, day: date) -> None:
    for d in (day - timedelta(days=1), day, day + timedelta(days=1)):
        fires = _local_fires("0 9 * * *", zone, d)
        assert [(f.hour, f.minute) for f in fires] == [(9, 0)]


def test_berlin_spring_forward_0230_fires_once_at_0300() -> None:
    fires = _local_fires("30 2 * * *", BERLIN, date(2026, 3, 29))
    assert len(fires) == 1
    assert fires[0] == datetime(2026, 3, 29, 3, 0, tzinfo=BERLIN)
    assert fires[0].astimezone(UTC) == utc(2026, 3, 29, 1, 0)  # the transition instant
    # Neighbouring days are untouched.
    assert _local_fires("30 2 * * *", BERLIN, date(2026, 3, 28))[0].astimezone(UTC) == utc(
        2026, 3, 28, 1, 30
    )
    assert _local_fires("30 2 * * *", BERLIN, date(2026, 3, 30))[0].astimezone(UTC) == utc(
        2026, 3, 30, 0, 30
    )


def test_berlin_fall_back_0230_fires_once_on_the_first_pass() -> None:
    fires = _local_fires("30 2 * * *", BERLIN, date(2026, 10, 25))
    assert len(fires) == 1
    assert fires[0].astimezone(UTC) == utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    assert fires[0].fold == 0


def test_toronto_spring_forward_0230_fires_once_at_0300() -> None:
    fires = _local_fires("30 2 * * *", TORONTO, date(2026, 3, 8))
    assert len(fires) == 1
    assert fires[0].astimezone(UTC) == utc(2026, 3, 8, 7, 0)  # 03:00 EDT
    assert (fires[0].hour, fires[0].minute) == (3, 0)


def test_toronto_fall_back_0130_fires_once_on_the_first_pass() -> None:
    fires = _local_fires("30 1 * * *", TORONTO, date(2026, 11, 1))
    assert len(fires) == 1
    assert fires[0].astimezone(UTC) == utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    # The 02:30 job is not in Toronto's fold: plain once.
    fires = _local_fires("30 2 * * *", TORONTO, date(2026, 11, 1))
    assert [f.astimezone(UTC) for f in fires] == [utc(2026, 11, 1, 7, 30)]


@pytest.mark.parametrize(
    ("zone", "fold_start_utc"),
    [(BERLIN, utc(2026, 10, 25, 0, 0)), (TORONTO, utc(2026, 11, 1, 5, 0))],
)
def test_every_15_minutes_fires_on_both_passes_of_the_fold(
    zone: ZoneInfo, fold_start_utc: datetime
) -> None:
    sched = parse_schedule("*/15 * * * *")
    fires = walk(
        sched,
        fold_start_utc - timedelta(minutes=1),
        fold_start_utc + timedelta(minutes=105),
        tz=zone,
    )
    assert len(fires) == 8
    assert fires == [fold_start_utc + timedelta(minutes=15 * i) for i in range(8)]
    locals_ = [f.astimezone(zone) for f in fires]
    assert [f.fold for f in locals_] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [f.minute for f in locals_[:4]] == [f.minute for f in locals_[4:]]
    # And the walk around it keeps a steady 15-minute pace in UTC.
    wide = walk(
        sched, fold_start_utc - timedelta(hours=2), fold_start_utc + timedelta(hours=3), zone
    )
    assert all(b - a == timedelta(minutes=15) for a, b in zip(wide, wide[1:], strict=False))


def test_every_15_minutes_in_the_spring_gap_collapses_to_one_instant() -> None:
    sched = parse_schedule("*/15 * * * *")
    fires = walk(sched, utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 30), tz=BERLIN)
    assert fires == [
        utc(2026, 3, 29, 0, 45),
        utc(2026, 3, 29, 1, 0),
        utc(2026, 3, 29, 1, 15),
        utc(2026, 3, 29, 1, 30),
    ]


def test_gap_matches_without_an_existing_match_still_fire_once() -> None:
    # 02:05, 02:10, ... 02:55 all fall in Berlin's gap: one fire at 03:00 CEST.
    sched = parse_schedule("5-55/5 2 * * *")
    fires = walk(sched, utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 23, 0), tz=BERLIN)
    assert fires == [utc(2026, 3, 29, 1, 0)]


def test_after_inside_the_first_pass_still_sees_the_second_pass() -> None:
    sched = parse_schedule("*/15 * * * *")
    # 02:50 CEST (first pass): next is 02:00 CET, i.e. 01:00Z, not 03:00 CET.
    assert compute_next_run(sched, after=utc(2026, 10, 25, 0, 50), tz=BERLIN) == utc(
        2026, 10, 25, 1, 0
    )
    hourly_fixed = parse_schedule("50 2 * * *")
    assert compute_next_run(hourly_fixed, after=utc(2026, 10, 25, 0, 50), tz=BERLIN) == utc(
        2026, 10, 26, 1, 50
    )


def test_lord_howe_half_hour_shift() -> None:
    zone = ZoneInfo("Australia/Lord_Howe")
    # 2026-10-04 02:00 -> 02:30 (+10:30 -> +11); 02:15 does not exist.
    fires = _local_fires("15 2 * * *", zone, date(2026, 10, 4))
    assert [(f.hour, f.minute) for f in fires] == [(2, 30)]
    # 2026-04-05 02:00 -> 01:30; 01:45 happens twice, fires once (first pass).
    fires = _local_fires("45 1 * * *", zone, date(2026, 4, 5))
    assert len(fires) == 1
    assert fires[0].utcoffset() == timedelta(hours=11)


@pytest.mark.parametrize(
    ("expr", "count"),
    [
        ("0 9 * * *", 365),
        ("30 2 * * *", 365),
        ("0 * * * *", 8760),
        ("*/15 * * * *", 35040),
        ("0 0 1 * *", 12),
        ("0 12 * * 1-5", 261),
        ("30 2 * * 0", 52),
    ],
)
def test_full_year_walk_in_berlin(expr: str, count: int) -> None:
    sched = parse_schedule(expr)
    start = datetime(2026, 1, 1, tzinfo=BERLIN) - timedelta(microseconds=1)
    end = datetime(2027, 1, 1, tzinfo=BERLIN) - timedelta(microseconds=1)
    fires = walk(sched, start, end, tz=BERLIN)
    assert len(fires) == count
    assert all(a < b for a, b in zip(fires, fires[1:], strict=False))
    assert len(set(fires)) == len(fires)
    if expr == "0 9 * * *":
        locals_ = [f.astimezone(BERLIN) for f in fires]
        assert all((f.hour, f.minute, f.second) == (9, 0, 0) for f in locals_)
        assert len({f.date() for f in locals_}) == 365
    if expr == "30 2 * * *":
        per_day = Counter(f.astimezone(BERLIN).date() for f in fires)
        assert set(per_day.values()) == {1}


# --------------------------------------------------------------------------- length limit


def test_text_of_exactly_the_limit_is_parsed() -> None:
    text = "0 9 * * *".ljust(MAX_SCHEDULE_CHARS)
    assert len(text) == 1000
    assert parse_schedule(text)["expr"] == "0 9 * * *"


@pytest.mark.parametrize(
    "text",
    [
        "0 9 * * *".ljust(1001),
        "1" * 5000 + " * * * *",
        "every " + "1" * 2000 + "s",
        ("0 9 * * *\n" * 110_000)[:1_000_000],  # a pasted megabyte, newlines and all
    ],
    ids=["1001", "5000", "2000-digit interval", "1 MB"],
)
def test_text_over_the_limit_is_refused_with_a_short_message(text: str) -> None:
    with pytest.raises(ScheduleTooLongError) as info:
        parse_schedule(text)
    exc = info.value
    assert isinstance(exc, ScheduleError) and isinstance(exc, ValueError)
    assert exc.text is text  # the whole input stays available to the caller
    message = str(exc)
    assert "\n" not in message
    assert len(message) < 500
    assert repr(text[:40]) + "..." in message
    assert f"{len(text)} characters, more than the 1000 allowed" in message
    assert "accepted forms" in message


@pytest.mark.parametrize("key", ["expr", "run_at", "tz"])
def test_dict_fields_over_the_limit_are_refused(key: str) -> None:
    base: dict[str, Any] = {
        "expr": {"kind": "cron", "expr": "0 9 * * *"},
        "run_at": {"kind": "once", "run_at": "2030-01-01T00:00"},
        "tz": {"kind": "cron", "expr": "0 9 * * *", "tz": "UTC"},
    }[key]
    with pytest.raises(ScheduleTooLongError) as info:
        parse_schedule({**base, key: "x" * 1_000_000})
    assert len(str(info.value)) < 500


# --------------------------------------------------------------------------- six-field footgun


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("0 */5 * * * *", 60),
        ("* * * * * *", 60),
        ("0 9 * * * 10-20", 11),
        ("0 9 * * * */10", 6),
        ("0 9 * * * 0,30", 2),
        ("0 9 * * * 30", 1),
        ("0 9 * * * 0", 1),
        ("0 9 * * *", None),
        ("@hourly", None),
        ("every 5m", None),
        ("in 5m", None),
    ],
)
def test_seconds_per_minute(text: str, count: int | None) -> None:
    assert seconds_per_minute(parse_schedule(text, now=NOW)) == count


def test_seconds_per_minute_agrees_with_the_fires() -> None:
    sched = parse_schedule("0 9 * * * 10-20")
    fires = walk(sched, utc(2026, 5, 4), utc(2026, 5, 4, 23, 59, 59), tz="UTC")
    assert len(fires) == seconds_per_minute(sched) == 11
    assert {(f.hour, f.minute) for f in fires} == {(9, 0)}  # 09:00:10 to 09:00:20


def test_six_field_warning_with_a_seconds_first_reading() -> None:
    warning = six_field_warning(parse_schedule("0 */5 * * * *"))
    assert warning == (
        "'0 */5 * * * *' has six fields; the last is seconds, so it fires 60 times a minute "
        "(every second) in each matching minute \u2014 if the first field was meant as seconds, "
        "write '*/5 * * * *'"
    )
    # The suggestion means what the seconds-first reading meant: every 5 minutes, at :00.
    hint = parse_schedule("*/5 * * * *")
    assert walk(hint, utc(2026, 5, 4), utc(2026, 5, 4, 0, 15), tz="UTC") == [
        utc(2026, 5, 4, 0, 5),
        utc(2026, 5, 4, 0, 10),
        utc(2026, 5, 4, 0, 15),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30 */5 * * * *", "write '*/5 * * * * 30'"),  # a non-zero second is kept, last
        ("0 9 * * * 10-20", "fires 11 times a minute in each matching minute"),
        ("* * * * * *", "fires 60 times a minute (every second) in each matching minute"),
    ],
)
def test_six_field_warning_texts(text: str, expected: str) -> None:
    warning = six_field_warning(parse_schedule(text), dash="-")
    assert warning is not None and expected in warning
    assert "\n" not in warning and "\u2014" not in warning


def test_six_field_warning_has_no_hint_when_the_reading_is_unclear() -> None:
    # Day-of-week numbers differ between the dialects: no guess.
    warning = six_field_warning(parse_schedule("0 0 9 * * 1-5"))
    assert warning is not None and "fires 5 times a minute" in warning
    assert "meant as seconds" not in warning
    assert "meant as seconds" not in (six_field_warning(parse_schedule("* * * * * *")) or "")


@pytest.mark.parametrize(
    "text", ["0 9 * * * 30", "0 9 * * * 0", "0 9 * * * 0,30", "0 9 * * *", "@daily", "every 5s"]
)
def test_no_six_field_warning_for_deliberate_seconds(text: str) -> None:
    assert six_field_warning(parse_schedule(text)) is None
