"""SPEC §2, sentence by sentence, on ``cron.schedule``'s public functions.

The accepted forms and what each is stored as, the errors (a ``ScheduleError`` - a
``ValueError`` - whose message quotes the input and says what is wrong), the next fire
strictly after an instant, interval series anchored on their previous slot, the slots of a
window and the grace. Fast on purpose: the mutation gate runs them per mutant
(tests/MUTATION.md). The configured zone is UTC (the ``home`` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cron.errors import ACCEPTED_SCHEDULES, ScheduleError, ScheduleTooLongError
from cron.schedule import (
    compute_next_run,
    describe,
    grace_seconds,
    iter_slots,
    next_slot,
    parse_schedule,
    period_seconds,
    to_iso,
)

T0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)


@pytest.fixture(autouse=True)
def _home(home: object) -> None:
    """An isolated home: configured zone UTC."""


def interval(seconds: int) -> dict[str, Any]:
    return parse_schedule({"kind": "interval", "seconds": seconds})


def cron(expr: str, tz: str | None = None) -> dict[str, Any]:
    return parse_schedule({"kind": "cron", "expr": expr, **({"tz": tz} if tz else {})})


def once(at: datetime) -> dict[str, Any]:
    return parse_schedule({"kind": "once", "run_at": to_iso(at)})


def rejects(text: object, *reason: str, **kw: Any) -> ScheduleError:
    with pytest.raises(ScheduleError) as info:
        parse_schedule(text, **kw)  # type: ignore[arg-type]
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert repr(text)[:30] in message, message  # the message quotes the input
    for part in reason:
        assert part in message, message
    return info.value


# -- the accepted text forms ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds", "display"),
    [
        ("every 90s", 90, "every 90s"),
        ("every 30m", 1800, "every 30m"),
        ("every 2h", 7200, "every 2h"),
        ("every 1d", 86400, "every 1d"),
        ("every 1w", 7 * 86400, "every 7d"),
        ("every 1h30m", 5400, "every 90m"),
        ("every 1 h 30 m", 5400, "every 90m"),
        ("EVERY 2 Hours", 7200, "every 2h"),
        ("every 61 seconds", 61, "every 61s"),
        ("every 3 mins", 180, "every 3m"),
        ("every 2 days", 2 * 86400, "every 2d"),
        ("every 1 wk", 7 * 86400, "every 7d"),
        ("every 5 sec", 5, "every 5s"),
        ("every 1 hr", 3600, "every 1h"),
        ("30m", 1800, "every 30m"),
        ("  45s  ", 45, "every 45s"),
        ("every 3650d", 3650 * 86400, "every 3650d"),
        ("every 1s", 1, "every 1s"),
    ],
)
def test_intervals_and_bare_durations(text: str, seconds: int, display: str) -> None:
    assert parse_schedule(text) == {"kind": "interval", "seconds": seconds, "display": display}


def test_in_a_duration_is_a_one_shot_from_now() -> None:
    assert parse_schedule("in 30m", now=T0) == {
        "kind": "once",
        "run_at": to_iso(T0 + 30 * M),
        "display": f"once at {to_iso(T0 + 30 * M)}",
    }
    naive = parse_schedule("in 1h", now=T0.replace(tzinfo=None))
    assert naive["run_at"] == to_iso(T0 + H)


def test_in_a_duration_without_now_is_from_the_current_time() -> None:
    before = datetime.now(UTC)
    run_at = datetime.fromisoformat(parse_schedule("in 10m")["run_at"])
    assert before + 10 * M - S <= run_at <= datetime.now(UTC) + 10 * M + S


def test_an_iso_timestamp_is_a_one_shot_naive_read_in_the_zone() -> None:
    assert parse_schedule("2026-06-01T12:00:00+02:00")["run_at"] == to_iso(T0)
    assert parse_schedule("2026-06-01T10:00:00")["run_at"] == to_iso(T0)  # configured: UTC
    berlin = parse_schedule("2026-06-01T12:00:00", tz="Europe/Berlin")
    assert berlin == {"kind": "once", "run_at": to_iso(T0), "display": f"once at {to_iso(T0)}"}


@pytest.mark.parametrize("text", ["0 9 * * 1-5", "*/15 * * * *", "0 0 1 1 * 30"])
def test_cron_text_is_stored_as_given(text: str) -> None:
    assert parse_schedule(text) == {"kind": "cron", "expr": text, "display": text}


def test_cron_text_is_normalised() -> None:
    assert parse_schedule("  0   9 * *  1-5 ")["expr"] == "0 9 * * 1-5"
    assert parse_schedule("@DAILY")["kind"] == "cron"


def test_a_cron_read_in_a_named_zone_records_it() -> None:
    assert parse_schedule("0 9 * * *", tz="Europe/Berlin") == {
        "kind": "cron",
        "expr": "0 9 * * *",
        "display": "0 9 * * *",
        "tz": "Europe/Berlin",
    }
    assert parse_schedule("@hourly", tz="Europe/Berlin")["tz"] == "Europe/Berlin"
    assert "tz" not in parse_schedule("0 9 * * *")
    assert "tz" not in parse_schedule("every 1h", tz="Europe/Berlin")


# -- text that is not a schedule -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty schedule"),
        ("   ", "empty schedule"),
        ("bogus", "not a recognised schedule"),
        ("every 0s", "at least 1 second"),
        ("every 0m", "at least 1 second"),
        ("in 0s", "at least 1 second"),
        ("every 3651d", "longer than 3650 days"),
        ("every 5 parsecs", "unknown duration unit 'parsecs'"),
        ("every 1h 2h", "unit 'h' given twice"),
        ("every 1 hour 1 hr", "given twice"),
        ("every soon", "bad duration"),
        ("in a while", "bad duration"),
        ("every 1.5h", "bad duration"),
        ("2026-13-45T00:00:00", "not a recognised schedule"),
    ],
)
def test_bad_text_is_a_schedule_error_naming_what_is_wrong(text: str, reason: str) -> None:
    rejects(text, reason, "accepted forms")


def test_a_bad_cron_expression_is_a_schedule_error() -> None:
    rejects("61 * * * *", "out of range")
    rejects("* * *", "field")


def test_schedule_text_over_1000_characters_is_refused() -> None:
    with pytest.raises(ScheduleTooLongError) as info:
        parse_schedule("every 1h" + " " * 993)
    assert "1001 characters" in str(info.value)
    assert parse_schedule("every 1h" + " " * 992)["seconds"] == 3600
    with pytest.raises(ScheduleTooLongError):
        parse_schedule({"kind": "cron", "expr": "*" * 1001})
    with pytest.raises(ScheduleTooLongError):
        parse_schedule({"kind": "once", "run_at": "2" * 1001})
    with pytest.raises(ScheduleTooLongError):
        parse_schedule({"kind": "cron", "expr": "* * * * *", "tz": "x" * 1001})


@pytest.mark.parametrize("value", [None, 42, ["every 1h"]])
def test_neither_text_nor_dict_is_a_schedule_error(value: object) -> None:
    rejects(value, "expected a schedule string or dict")


# -- dicts: re-validated, normalised ------------------------------------------------------------


def test_a_dict_is_normalised_unknown_keys_dropped_display_recomputed() -> None:
    assert parse_schedule({"kind": "interval", "seconds": 90, "display": "x", "junk": 1}) == (
        {"kind": "interval", "seconds": 90, "display": "every 90s"}
    )
    assert parse_schedule({"kind": "interval", "seconds": 120.0})["seconds"] == 120
    assert parse_schedule({"kind": "cron", "expr": " 0  9 * * * "}) == {
        "kind": "cron",
        "expr": "0 9 * * *",
        "display": "0 9 * * *",
    }


def test_a_dicts_zone_is_validated_stripped_and_kept() -> None:
    assert cron("0 9 * * *", tz=" Europe/Berlin ")["tz"] == "Europe/Berlin"
    kept = parse_schedule({"kind": "interval", "seconds": 60, "tz": "Europe/Berlin"})
    assert kept["tz"] == "Europe/Berlin"
    assert "tz" not in parse_schedule({"kind": "interval", "seconds": 60, "tz": "  "})
    assert parse_schedule({"kind": "cron", "expr": "0 9 * * *"}, tz="Asia/Tokyo")["tz"] == (
        "Asia/Tokyo"
    )
    own = parse_schedule(
        {"kind": "cron", "expr": "0 9 * * *", "tz": "Europe/Berlin"}, tz="Asia/Tokyo"
    )
    assert own["tz"] == "Europe/Berlin"


def test_a_one_shot_dict_reads_a_naive_run_at_in_its_own_zone() -> None:
    got = parse_schedule(
        {"kind": "once", "run_at": "2026-06-01T12:00:00", "tz": "Europe/Berlin"}, tz="Asia/Tokyo"
    )
    assert got == {
        "kind": "once",
        "run_at": to_iso(T0),
        "display": f"once at {to_iso(T0)}",
        "tz": "Europe/Berlin",
    }
    assert parse_schedule({"kind": "once", "run_at": "2026-06-01T19:00:00"}, tz="Asia/Tokyo")[
        "run_at"
    ] == to_iso(T0)
    assert parse_schedule({"kind": "once", "run_at": T0})["run_at"] == to_iso(T0)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"kind": "weekly"}, "'kind' must be one of cron, interval, once"),
        ({}, "'kind' must be one of"),
        ({"kind": "cron"}, "cron schedule needs an 'expr' string"),
        ({"kind": "cron", "expr": 5}, "needs an 'expr' string"),
        ({"kind": "cron", "expr": ""}, "empty cron expression"),
        (
            {"kind": "cron", "expr": "* * * * *", "tz": "Mars/Olympus"},
            "unknown time zone 'Mars/Olympus'",
        ),
        ({"kind": "cron", "expr": "* * * * *", "tz": 5}, "unknown time zone 5"),
        ({"kind": "interval", "seconds": True}, "'seconds' must be an integer"),
        ({"kind": "interval", "seconds": "60"}, "'seconds' must be an integer"),
        ({"kind": "interval"}, "'seconds' must be an integer"),
        ({"kind": "interval", "seconds": 1.5}, "must be a whole number"),
        ({"kind": "interval", "seconds": 0}, "at least 1 second"),
        ({"kind": "interval", "seconds": 0.0}, "at least 1 second"),
        ({"kind": "interval", "seconds": 3650 * 86400 + 1}, "longer than 3650 days"),
        ({"kind": "once"}, "one-shot schedule needs a 'run_at' timestamp"),
        ({"kind": "once", "run_at": 5}, "needs a 'run_at' timestamp"),
        ({"kind": "once", "run_at": "tomorrow"}, "not an ISO-8601 timestamp"),
    ],
)
def test_a_bad_dict_is_a_schedule_error(data: dict[str, Any], reason: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_schedule(data)
    assert reason in str(info.value)
    assert repr(data)[:20] in str(info.value)


def message(schedule: object, reason: str) -> str:
    """The whole line a user reads for a bad schedule (the CLI prints ``str(exc)``, SPEC §2)."""
    return f"invalid schedule {schedule!r}: {reason}; accepted forms: {ACCEPTED_SCHEDULES}"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"kind": "cron"}, "cron schedule needs an 'expr' string"),
        ({"kind": "once"}, "one-shot schedule needs a 'run_at' timestamp"),
        ({"kind": "interval", "seconds": 1.5}, "interval 'seconds' must be a whole number"),
        ({"kind": "interval", "seconds": 0}, "interval must be at least 1 second"),
        ({"kind": "interval", "seconds": 3650 * 86400 + 1}, "interval longer than 3650 days"),
    ],
)
def test_a_dict_missing_its_field_says_so_in_one_exact_line(
    data: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_schedule(data)
    assert str(info.value) == message(data, reason)


@pytest.mark.parametrize("text", ["every soon", "every 1h30", "every 5"])
def test_a_bad_duration_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_schedule(text)
    assert str(info.value) == message(text, "bad duration (use e.g. 90s, 30m, 2h, 1d or 1h30m)")


def test_the_longest_interval_is_3650_days() -> None:
    assert interval(3650 * 86400)["seconds"] == 3650 * 86400
    assert interval(1)["seconds"] == 1


# -- compute_next_run: strictly after ---------------------------------------------------------


def test_next_run_is_strictly_after() -> None:
    assert compute_next_run(cron("0 * * * *"), after=T0) == T0 + H
    assert compute_next_run(cron("0 * * * *"), after=T0 - S) == T0
    assert compute_next_run(interval(90), after=T0) == T0 + 90 * S
    assert compute_next_run(once(T0), after=T0 - S) == T0
    assert compute_next_run(once(T0), after=T0) is None  # spent
    assert compute_next_run(once(T0), after=T0 + S) is None


def test_next_run_takes_a_naive_after_as_utc_and_answers_in_utc() -> None:
    got = compute_next_run(cron("0 * * * *"), after=T0.replace(tzinfo=None))
    assert got == T0 + H and got is not None and got.utcoffset() == timedelta(0)


def test_a_cron_next_run_reads_the_jobs_zone_then_the_given_one() -> None:
    assert compute_next_run(cron("0 9 * * *", tz="Europe/Berlin"), after=T0) == (
        datetime(2026, 6, 2, 7, 0, tzinfo=UTC)
    )
    assert compute_next_run(cron("0 9 * * *"), after=T0, tz="Asia/Tokyo") == (
        datetime(2026, 6, 2, 0, 0, tzinfo=UTC)
    )
    assert compute_next_run(
        cron("0 9 * * *", tz="Europe/Berlin"), after=T0, tz="Asia/Tokyo"
    ) == datetime(2026, 6, 2, 7, 0, tzinfo=UTC)
    assert compute_next_run(cron("0 9 * * *"), after=T0) == datetime(2026, 6, 2, 9, tzinfo=UTC)


def test_an_interval_past_the_last_representable_instant_has_no_next_run() -> None:
    far = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    assert compute_next_run(interval(86400), after=far) is None


@pytest.mark.parametrize("fn", ["compute_next_run", "next_slot", "iter_slots", "period"])
def test_an_unknown_kind_is_a_schedule_error(fn: str) -> None:
    bad = {"kind": "weekly"}
    with pytest.raises(
        ScheduleError,
        match=r"\{'kind': 'weekly'\}: 'kind' must be one of "
        "cron, interval, once",
    ):
        if fn == "compute_next_run":
            compute_next_run(bad, after=T0)
        elif fn == "next_slot":
            next_slot(bad, slot=None, now=T0)
        elif fn == "iter_slots":
            iter_slots(bad, start=T0, end=T0 + H)
        else:
            period_seconds(bad, now=T0)


def test_a_stored_schedule_missing_its_field_is_a_schedule_error() -> None:
    with pytest.raises(ScheduleError, match="cron schedule needs an 'expr' string"):
        compute_next_run({"kind": "cron"}, after=T0)
    with pytest.raises(ScheduleError, match="one-shot schedule needs a 'run_at' timestamp"):
        compute_next_run({"kind": "once"}, after=T0)
    with pytest.raises(ScheduleError, match="'seconds' must be an integer"):
        compute_next_run({"kind": "interval"}, after=T0)


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        ({"kind": "cron"}, "cron schedule needs an 'expr' string"),
        ({"kind": "once"}, "one-shot schedule needs a 'run_at' timestamp"),
        ({"kind": "once", "run_at": 5}, "one-shot schedule needs a 'run_at' timestamp"),
        ({"kind": "interval"}, "interval 'seconds' must be an integer"),
    ],
)
@pytest.mark.parametrize("fn", ["compute_next_run", "iter_slots"])
def test_a_stored_schedule_missing_its_field_quotes_that_schedule(
    fn: str, stored: dict[str, Any], reason: str
) -> None:
    # a hand-edited jobs.json: the message names the stored schedule and what it lacks
    with pytest.raises(ScheduleError) as info:
        if fn == "compute_next_run":
            compute_next_run(stored, after=T0)
        else:
            iter_slots(stored, start=T0, end=T0 + H)
    assert str(info.value) == message(stored, reason)


@pytest.mark.parametrize("fn", ["next_slot", "period_seconds"])
def test_a_stored_interval_without_seconds_quotes_that_schedule(fn: str) -> None:
    stored = {"kind": "interval"}
    with pytest.raises(ScheduleError) as info:
        if fn == "next_slot":
            next_slot(stored, slot=T0, now=T0)
        else:
            period_seconds(stored, now=T0)
    assert str(info.value) == message(stored, "interval 'seconds' must be an integer")


@pytest.mark.parametrize("junk", [5, ["Europe/Berlin"], "", "  "])
def test_a_stored_tz_that_is_not_a_zone_name_counts_as_no_zone(junk: object) -> None:
    # SPEC §2: the job's zone (``schedule.tz``), else the configured one (UTC here). A stored
    # ``tz`` that is not a zone name (a hand-edited jobs.json) is no zone - for a cron's wall
    # clock and a one-shot's naive ``run_at`` alike, and never an error.
    one_shot = {"kind": "once", "run_at": "2026-06-01T10:00:00", "tz": junk}
    assert compute_next_run(one_shot, after=T0 - S) == T0
    assert iter_slots(one_shot, start=T0, end=T0) == [T0]
    daily = {"kind": "cron", "expr": "0 10 * * *", "tz": junk}
    assert compute_next_run(daily, after=T0 - S) == T0


def test_a_stored_one_shot_reads_a_naive_run_at_in_its_own_zone() -> None:
    sched = {"kind": "once", "run_at": "2026-06-01T12:00:00", "tz": "Europe/Berlin"}
    assert compute_next_run(sched, after=T0 - S) == T0
    assert iter_slots(sched, start=T0, end=T0) == [T0]


# -- next_slot: interval series anchored on the previous slot ----------------------------------


def test_an_interval_series_keeps_its_phase_across_passed_slots() -> None:
    every10 = interval(600)
    assert next_slot(every10, slot=T0, now=T0 + 25 * M) == T0 + 30 * M
    assert next_slot(every10, slot=T0, now=T0 + 30 * M) == T0 + 40 * M  # strictly after now
    assert next_slot(every10, slot=T0, now=T0 + 29 * M) == T0 + 30 * M
    assert next_slot(every10, slot=T0, now=T0) == T0 + 10 * M


def test_an_interval_slot_still_ahead_is_kept_and_no_slot_means_now_plus_interval() -> None:
    every10 = interval(600)
    assert next_slot(every10, slot=T0 + 5 * M, now=T0) == T0 + 5 * M
    assert next_slot(every10, slot=None, now=T0) == T0 + 10 * M
    assert next_slot(every10, slot=T0.replace(tzinfo=None), now=T0 + M) == T0 + 10 * M


def test_next_slot_of_cron_and_once() -> None:
    assert next_slot(cron("0 * * * *"), slot=T0 - 5 * H, now=T0 + M) == T0 + H
    assert next_slot(cron("0 9 * * *"), slot=None, now=T0, tz="Asia/Tokyo") == (
        datetime(2026, 6, 2, 0, 0, tzinfo=UTC)
    )
    assert next_slot(once(T0 + H), slot=T0, now=T0) is None


# -- iter_slots: the slots of a window, both ends included -------------------------------------


def test_interval_slots_are_anchored_on_start_both_ends_included() -> None:
    assert iter_slots(interval(600), start=T0, end=T0 + 30 * M) == [
        T0,
        T0 + 10 * M,
        T0 + 20 * M,
        T0 + 30 * M,
    ]
    assert iter_slots(interval(600), start=T0, end=T0 + 29 * M) == [T0, T0 + 10 * M, T0 + 20 * M]
    assert iter_slots(interval(600), start=T0, end=T0 + 30 * M, limit=2) == [T0, T0 + 10 * M]
    assert iter_slots(interval(600), start=T0, end=T0) == [T0]


def test_cron_slots_include_both_ends() -> None:
    hourly = cron("0 * * * *")
    assert iter_slots(hourly, start=T0, end=T0 + 2 * H) == [T0, T0 + H, T0 + 2 * H]
    assert iter_slots(hourly, start=T0 + S, end=T0 + 2 * H - S) == [T0 + H]
    assert iter_slots(hourly, start=T0, end=T0 + 5 * H, limit=3) == [T0, T0 + H, T0 + 2 * H]
    assert iter_slots(cron("0 9 * * *"), start=T0, end=T0 + 2 * D, tz="Asia/Tokyo") == [
        datetime(2026, 6, 2, 0, tzinfo=UTC),
        datetime(2026, 6, 3, 0, tzinfo=UTC),
    ]
    assert iter_slots(cron("0 9 * * *", tz="Europe/Berlin"), start=T0, end=T0 + D) == [
        datetime(2026, 6, 2, 7, tzinfo=UTC)
    ]


def test_one_shot_slots_and_empty_windows() -> None:
    assert iter_slots(once(T0), start=T0, end=T0) == [T0]
    assert iter_slots(once(T0), start=T0 - H, end=T0 - S) == []
    assert iter_slots(once(T0), start=T0 + S, end=T0 + H) == []
    assert iter_slots(interval(60), start=T0, end=T0 - S) == []
    assert iter_slots(interval(60), start=T0, end=T0 + H, limit=0) == []
    assert iter_slots(cron("* * * * *"), start=T0, end=T0 + H, limit=-1) == []


@pytest.mark.parametrize("kind", ["interval", "cron", "once"])
def test_at_most_limit_slots_for_every_kind(kind: str) -> None:
    sched = {"interval": interval(600), "cron": cron("*/10 * * * *"), "once": once(T0)}[kind]
    assert iter_slots(sched, start=T0, end=T0 + H, limit=1) == [T0]
    assert iter_slots(sched, start=T0, end=T0 + H, limit=0) == []
    assert iter_slots(sched, start=T0, end=T0 + H, limit=-1) == []
    assert iter_slots(sched, start=T0 + S, end=T0 - S, limit=5) == []  # end before start


def test_a_start_between_two_seconds_lists_no_slot_before_it() -> None:
    # start <= s <= end at full precision: a slot 1 microsecond before start is not in the
    # window, one exactly at start is (and one 1 microsecond after end is not)
    us = timedelta(microseconds=1)
    every_minute = cron("* * * * *")
    assert iter_slots(every_minute, start=T0 + us, end=T0 + M) == [T0 + M]
    assert iter_slots(every_minute, start=T0, end=T0 + M - us) == [T0]


def test_iter_slots_takes_naive_bounds_as_utc() -> None:
    naive = T0.replace(tzinfo=None)
    assert iter_slots(interval(600), start=naive, end=naive + 10 * M) == [T0, T0 + 10 * M]


def test_the_default_limit_is_1000_slots() -> None:
    assert len(iter_slots(interval(1), start=T0, end=T0 + H)) == 1000


# -- period and grace: clamp(period / 2, 120, 7200) -------------------------------------------


def test_period_is_the_interval_or_the_gap_between_the_next_two_cron_fires() -> None:
    assert period_seconds(interval(90)) == 90.0
    assert period_seconds(once(T0)) is None
    assert period_seconds(cron("0 */3 * * *"), now=T0) == 3 * 3600.0
    assert period_seconds(cron("0 9 * * 1"), now=T0) == 7 * 86400.0
    assert period_seconds(cron("0 9 * * *"), now=T0, tz="Asia/Tokyo") == 86400.0
    # 21:00 EST, then 00:00 EST and 03:00 EDT: a 2 h gap in New York, 3 h in UTC
    spring = datetime(2026, 3, 8, 2, 0, tzinfo=UTC)
    assert period_seconds(cron("0 */3 * * *"), now=spring, tz="America/New_York") == 7200.0
    assert period_seconds(cron("0 */3 * * *", tz="America/New_York"), now=spring) == 7200.0
    assert period_seconds(cron("0 */3 * * *"), now=spring) == 10800.0


def test_a_cron_with_at_most_one_more_fire_has_no_period() -> None:
    assert period_seconds(cron("0 0 1 1 *"), now=datetime(9998, 6, 1, tzinfo=UTC)) is None
    assert period_seconds(cron("0 0 1 1 *"), now=datetime(9999, 6, 1, tzinfo=UTC)) is None


def test_period_without_now_is_from_the_current_time() -> None:
    assert period_seconds(cron("0 0 * * *")) == 86400.0


@pytest.mark.parametrize(
    ("schedule", "grace"),
    [
        ({"kind": "interval", "seconds": 60}, 120.0),
        ({"kind": "interval", "seconds": 240}, 120.0),
        ({"kind": "interval", "seconds": 242}, 121.0),
        ({"kind": "interval", "seconds": 600}, 300.0),
        ({"kind": "interval", "seconds": 14400}, 7200.0),
        ({"kind": "interval", "seconds": 14402}, 7200.0),
        ({"kind": "interval", "seconds": 86400}, 7200.0),
        ({"kind": "cron", "expr": "0 */3 * * *"}, 5400.0),
        ({"kind": "once", "run_at": "2026-06-01T10:00:00+00:00"}, 120.0),
    ],
)
def test_grace_is_half_the_period_clamped_to_120_7200(
    schedule: dict[str, Any], grace: float
) -> None:
    assert grace_seconds(schedule, now=T0) == grace


def test_grace_reads_the_zone() -> None:
    spring = datetime(2026, 3, 8, 2, 0, tzinfo=UTC)
    assert grace_seconds(cron("0 */3 * * *"), now=spring, tz="America/New_York") == 3600.0
    assert grace_seconds(cron("0 */3 * * *"), now=spring) == 5400.0


def test_describe_is_the_display_recomputed_when_missing() -> None:
    assert describe({"kind": "interval", "seconds": 90, "display": "ninety"}) == "ninety"
    assert describe({"kind": "interval", "seconds": 90}) == "every 90s"
    assert describe({"kind": "interval", "seconds": 90, "display": ""}) == "every 90s"
    assert describe({"kind": "cron", "expr": "0 9 * * *", "display": None}) == "0 9 * * *"
