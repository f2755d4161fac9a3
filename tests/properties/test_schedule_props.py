"""Properties of cron.schedule, checked against an independent brute-force reference.

The reference (``_reference_next``) knows nothing of croniter's iteration or of
the module's wall-clock scan: it steps UTC minutes one by one, looks at the
local wall clock, and applies the SPEC §2 rules literally (match on the wall
time; a fold's second pass only for all-hours expressions; a gap's wall times
fire at the first instant after the gap). Cron expressions are generated
together with the sets they denote, so matching needs no cron parser either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from cron.errors import ScheduleError
from cron.schedule import compute_next_run, next_slot, parse_schedule

ZONES = [
    "Europe/Berlin",
    "America/Toronto",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "UTC",
    "Asia/Kolkata",
]
LO = datetime(2020, 1, 1, tzinfo=UTC)
HI = datetime(2030, 12, 31, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
WINDOW_MINUTES = 3 * 24 * 60


@pytest.fixture(autouse=True)
def _isolated(home: Path) -> None:
    """A private CRONKIT_HOME (TZ=UTC) so no user config leaks in."""


# --------------------------------------------------------------------------- zones


@cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """Every UTC instant in [LO, HI] at which the zone's offset changes."""
    zone = ZoneInfo(zone_name)
    out: list[datetime] = []
    t = LO
    prev = t.astimezone(zone).utcoffset()
    while t < HI:
        n = t + timedelta(days=1)
        off = n.astimezone(zone).utcoffset()
        if off != prev:
            lo, hi = int(t.timestamp()), int(n.timestamp())
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if datetime.fromtimestamp(mid, zone).utcoffset() == prev:
                    lo = mid
                else:
                    hi = mid
            out.append(datetime.fromtimestamp(hi, UTC))
            prev = off
        t = n
    return tuple(out)


@st.composite
def zone_and_instant(draw: st.DrawFn) -> tuple[str, datetime]:
    """A zone and an aware UTC instant, half the time within hours of a DST change."""
    zone = draw(st.sampled_from(ZONES))
    near = transitions(zone)
    use_near = draw(st.booleans())
    if near and use_near:
        base = draw(st.sampled_from(near))
        offset = draw(st.integers(-3 * 3600, 3 * 3600) | st.integers(-6 * 3600, 6 * 3600))
        micro = draw(st.sampled_from([0, 0, 1, 999_999]))
        return zone, base + timedelta(seconds=offset, microseconds=micro)
    naive = draw(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 30)))
    return zone, naive.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- cron generation


@dataclass(frozen=True)
class CronSpec:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    dom: frozenset[int] | None  # None: the literal '*'
    months: frozenset[int]
    dow: frozenset[int] | None  # Sunday = 0; None: the literal '*'

    @property
    def all_hours(self) -> bool:
        return len(self.hours) == 24

    def matches(self, wall: datetime) -> bool:
        if wall.minute not in self.minutes or wall.hour not in self.hours:
            return False
        if wall.month not in self.months:
            return False
        _, _, dom_text, _, dow_text = self.text.split()[:5]
        return vixie_day_matches(dom_text, self.dom, dow_text, self.dow, wall)


def vixie_day_matches(
    dom_text: str,
    dom: frozenset[int] | None,
    dow_text: str,
    dow: frozenset[int] | None,
    wall: datetime,
) -> bool:
    """Vixie cron's day rule (cron.c): AND when either field's text starts with '*', else OR.

    ``dom``/``dow`` are the sets the fields denote (None: every day).
    """
    dom_ok = dom is None or wall.day in dom
    dow_ok = dow is None or wall.isoweekday() % 7 in dow
    if dom_text.startswith("*") or dow_text.startswith("*"):
        return dom_ok and dow_ok
    return dom_ok or dow_ok


def field(lo: int, hi: int) -> st.SearchStrategy[tuple[str, frozenset[int]]]:
    """A cron field over [lo, hi] as (text, set of values it denotes)."""
    value = st.integers(lo, hi)
    single = value.map(lambda v: (str(v), frozenset({v})))
    span = st.tuples(value, value).map(sorted)
    rng = span.map(lambda ab: (f"{ab[0]}-{ab[1]}", frozenset(range(ab[0], ab[1] + 1))))
    step = st.integers(1, hi - lo + 1).map(lambda s: (f"*/{s}", frozenset(range(lo, hi + 1, s))))
    rstep = st.tuples(span, st.integers(1, hi - lo + 1)).map(
        lambda t: (f"{t[0][0]}-{t[0][1]}/{t[1]}", frozenset(range(t[0][0], t[0][1] + 1, t[1])))
    )
    item = st.one_of(single, rng, step, rstep)
    many = st.lists(item, min_size=2, max_size=3).map(
        lambda items: (",".join(t for t, _ in items), frozenset().union(*(s for _, s in items)))
    )
    star = st.just(("*", frozenset(range(lo, hi + 1))))
    return st.one_of(star, item, many)


def day_field(lo: int, hi: int, full: int) -> st.SearchStrategy[tuple[str, frozenset[int] | None]]:
    """Day-of-month / day-of-week: '*' (None) or the set of days the field denotes."""

    def norm(item: tuple[str, frozenset[int]]) -> tuple[str, frozenset[int] | None]:
        text, values = item
        if text == "*":
            return text, None
        return text, frozenset(v % 7 for v in values) if full == 7 else values

    return st.one_of(st.just(("*", None)), st.just(("*", None)), field(lo, hi).map(norm))


@st.composite
def cron_specs(draw: st.DrawFn) -> CronSpec:
    minute = draw(field(0, 59))
    hour = draw(
        st.one_of(
            field(0, 23),
            st.sampled_from(["1", "2", "1-3", "2,3", "0-4", "*/2", "1,2"]).map(
                lambda t: (t, frozenset(_expand_simple(t, 0, 23)))
            ),
        )
    )
    dom = draw(day_field(1, 31, 31))
    month = draw(st.one_of(st.just(("*", frozenset(range(1, 13)))), field(1, 12)))
    dow = draw(day_field(0, 7, 7))
    text = " ".join(t for t, _ in (minute, hour, dom, month, dow))
    return CronSpec(text, minute[1], hour[1], dom[1], month[1], dow[1])


def _expand_simple(text: str, lo: int, hi: int) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        span, _, step = part.partition("/")
        a, b = (lo, hi) if span == "*" else (int(span.split("-")[0]), int(span.split("-")[-1]))
        out.update(range(a, b + 1, int(step or 1)))
    return out


def _fires_at(spec: CronSpec, u: datetime, zone: ZoneInfo) -> bool:
    """Does the SPEC say ``spec`` fires at the minute-aligned UTC instant ``u``?"""
    local = u.astimezone(zone)
    wall = local.replace(tzinfo=None, fold=0)
    if spec.matches(wall) and (local.fold == 0 or spec.all_hours):
        return True
    before = (u - MINUTE).astimezone(zone).utcoffset()
    after = local.utcoffset()
    assert before is not None and after is not None
    if after > before:
        # `u` is the first instant after a gap; the skipped wall times fire here.
        m = (u + before).replace(tzinfo=None)
        while m < wall:
            if spec.matches(m):
                return True
            m += MINUTE
    return False


def _reference_next(spec: CronSpec, after: datetime, zone: ZoneInfo) -> datetime | None:
    """The first firing UTC minute strictly after ``after`` within the window, else None."""
    u = after.replace(second=0, microsecond=0) + MINUTE
    for _ in range(WINDOW_MINUTES):
        if _fires_at(spec, u, zone):
            return u
        u += MINUTE
    return None


# --------------------------------------------------------------------------- cron properties


@given(spec=cron_specs(), where=zone_and_instant())
@example(  # croniter reads a one-value range as the whole field; must not leak through
    spec=CronSpec(
        "0-0/1 * * * *",
        frozenset({0}),
        frozenset(range(24)),
        None,
        frozenset(range(1, 13)),
        None,
    ),
    where=("Europe/Berlin", datetime(2020, 3, 29, 1, 0, 1, tzinfo=UTC)),
)
@example(
    spec=CronSpec(
        "*/15 * * * *",
        frozenset(range(0, 60, 15)),
        frozenset(range(24)),
        None,
        frozenset(range(1, 13)),
        None,
    ),
    where=("Europe/Berlin", datetime(2026, 10, 25, 0, 50, tzinfo=UTC)),
)
@example(
    spec=CronSpec(
        "*/20 2 * * *", frozenset({0, 20, 40}), frozenset({2}), None, frozenset(range(1, 13)), None
    ),
    where=("Europe/Berlin", datetime(2026, 3, 28, 23, 0, tzinfo=UTC)),
)
@example(
    spec=CronSpec(
        "30 2 * * *", frozenset({30}), frozenset({2}), None, frozenset(range(1, 13)), None
    ),
    where=("Europe/Berlin", datetime(2026, 3, 28, 23, 0, tzinfo=UTC)),
)
@example(
    spec=CronSpec(
        "30 2 * * *", frozenset({30}), frozenset({2}), None, frozenset(range(1, 13)), None
    ),
    where=("Europe/Berlin", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
)
@example(
    spec=CronSpec(
        "45 1 * * *", frozenset({45}), frozenset({1}), None, frozenset(range(1, 13)), None
    ),
    where=("Australia/Lord_Howe", datetime(2026, 4, 4, 14, 45, tzinfo=UTC)),
)
def test_next_run_matches_brute_force_reference(
    spec: CronSpec, where: tuple[str, datetime]
) -> None:
    zone_name, after = where
    zone = ZoneInfo(zone_name)
    sched = parse_schedule(spec.text)
    # A short walk, each step checked: the interesting steps (second pass of a
    # fold, the instant after a gap) usually come right after an ordinary fire.
    for _ in range(4):
        got = compute_next_run(sched, after=after, tz=zone_name)
        expected = _reference_next(spec, after, zone)
        assert got is not None
        assert got > after
        assert got.utcoffset() == timedelta(0)
        if expected is None:
            assert got > after + WINDOW_MINUTES * MINUTE
            return
        assert got == expected
        after = got


# --------------------------------------------------------------------------- Vixie's day rule

_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def vixie_field(
    lo: int, hi: int, *, names: bool = False
) -> st.SearchStrategy[tuple[str, frozenset[int]]]:
    """A day field as Vixie cron reads it: (text, the set of values it denotes).

    Covers '*', '*/n', numbers, (weekday) names, ranges with and without a
    step, and lists mixing them - a list may start with '*' or hold one later.
    Full sets that do not start with '*' ('1-31', '0-7', '*' inside a list)
    are generated too: they are where a "does it expand to everything" rule
    and Vixie's "does the text start with '*'" rule part ways.
    """
    value = st.integers(lo, hi)
    number = value.map(lambda v: (str(v), frozenset({v})))
    atoms = [number]
    if names:
        atoms.append(st.integers(0, 6).map(lambda v: (_DOW_NAMES[v], frozenset({v}))))
    atom = st.one_of(*atoms)
    span = st.tuples(atom, atom).filter(lambda ab: min(ab[0][1]) <= min(ab[1][1]))

    def rng(
        ab: tuple[tuple[str, frozenset[int]], tuple[str, frozenset[int]]], step: int
    ) -> tuple[str, frozenset[int]]:
        (ta, va), (tb, vb) = ab
        text = f"{ta}-{tb}" + (f"/{step}" if step > 1 else "")
        return text, frozenset(range(min(va), min(vb) + 1, step))

    ranged = st.tuples(span, st.sampled_from([1, 1, 2, 3, 7])).map(lambda t: rng(*t))
    full = st.just(("*", frozenset(range(lo, hi + 1))))
    star_step = st.integers(1, hi - lo).map(lambda n: (f"*/{n}", frozenset(range(lo, hi + 1, n))))
    item = st.one_of(atom, ranged, full, star_step)
    listed = st.lists(item, min_size=2, max_size=3).map(
        lambda items: (",".join(t for t, _ in items), frozenset().union(*(v for _, v in items)))
    )
    whole = st.just((f"{lo}-{hi}", frozenset(range(lo, hi + 1))))
    return st.one_of(full, star_step, atom, ranged, listed, whole)


@dataclass(frozen=True)
class VixieLine:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    dom_text: str
    dom: frozenset[int]
    months: frozenset[int]
    dow_text: str
    dow: frozenset[int]  # Sunday = 0 (7 folded onto 0)

    def day_matches(self, day: datetime) -> bool:
        return day.month in self.months and vixie_day_matches(
            self.dom_text, self.dom, self.dow_text, self.dow, day
        )


@st.composite
def vixie_lines(draw: st.DrawFn) -> VixieLine:
    minute = draw(st.one_of(st.just(("0", frozenset({0}))), field(0, 59)))
    hour = draw(st.one_of(st.just(("12", frozenset({12}))), field(0, 23)))
    month = draw(st.one_of(st.just(("*", frozenset(range(1, 13)))), field(1, 12)))
    dom_text, dom = draw(vixie_field(1, 31))
    dow_text, dow = draw(vixie_field(0, 7, names=True))
    text = " ".join((minute[0], hour[0], dom_text, month[0], dow_text))
    return VixieLine(
        text, minute[1], hour[1], dom_text, dom, month[1], dow_text, frozenset(d % 7 for d in dow)
    )


VIXIE_HORIZON_DAYS = 30 * 366


def _vixie_reference_next(line: VixieLine, after: datetime) -> datetime | None:
    """The first UTC minute strictly after ``after`` at which Vixie cron runs ``line``.

    Minute by minute through each day the day rule admits; a day it rejects is
    passed over whole (no minute of it can match). None within the horizon.
    """
    u = after.replace(second=0, microsecond=0) + MINUTE
    end = u + timedelta(days=VIXIE_HORIZON_DAYS)
    while u < end:
        if not line.day_matches(u):
            u = u.replace(hour=0, minute=0) + timedelta(days=1)
            continue
        if u.hour in line.hours and u.minute in line.minutes:
            return u
        u += MINUTE
    return None


@given(
    line=vixie_lines(),
    start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31)),
)
@example(  # both day fields restricted, neither starts with '*': either matches
    line=VixieLine(
        "0 0 13 * 5",
        frozenset({0}),
        frozenset({0}),
        "13",
        frozenset({13}),
        frozenset(range(1, 13)),
        "5",
        frozenset({5}),
    ),
    start=datetime(2024, 1, 1),
)
@example(  # '*/1' starts with '*': the 13th only (croniter alone: every day)
    line=VixieLine(
        "0 0 13 * */1",
        frozenset({0}),
        frozenset({0}),
        "13",
        frozenset({13}),
        frozenset(range(1, 13)),
        "*/1",
        frozenset(range(7)),
    ),
    start=datetime(2024, 1, 1),
)
@example(  # '*/2' starts with '*': odd days that are Mondays (croniter alone: odd OR Monday)
    line=VixieLine(
        "0 0 */2 * 1",
        frozenset({0}),
        frozenset({0}),
        "*/2",
        frozenset(range(1, 32, 2)),
        frozenset(range(1, 13)),
        "1",
        frozenset({1}),
    ),
    start=datetime(2024, 1, 1),
)
@example(  # every day of the month, no leading '*', and a '*' later in the other field: OR
    line=VixieLine(
        "0 0 1-31 * 1,*/2",
        frozenset({0}),
        frozenset({0}),
        "1-31",
        frozenset(range(1, 32)),
        frozenset(range(1, 13)),
        "1,*/2",
        frozenset({0, 1, 2, 4, 6}),
    ),
    start=datetime(2024, 1, 1),
)
def test_day_fields_follow_vixie_cron(line: VixieLine, start: datetime) -> None:
    after = start.replace(tzinfo=UTC)
    expected = _vixie_reference_next(line, after)
    try:
        sched = parse_schedule(line.text, tz="UTC")
    except ScheduleError as exc:
        # Only an expression Vixie would never run either may be refused.
        assert "never fires" in str(exc.reason), exc
        assert expected is None, (line.text, expected)
        return
    for _ in range(6):
        got = compute_next_run(sched, after=after)
        if expected is None:
            assert got is None or got > after + timedelta(days=VIXIE_HORIZON_DAYS), line.text
            return
        assert got == expected, (line.text, after)
        after = got
        expected = _vixie_reference_next(line, after)


cron_texts = st.one_of(
    cron_specs().map(lambda s: s.text),
    # 6-field (seconds last) variants of the same grammar.
    st.tuples(cron_specs(), field(0, 59)).map(lambda t: f"{t[0].text} {t[1][0]}"),
    st.sampled_from(["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "0 0 L * *"]),
)


@given(expr=cron_texts, where=zone_and_instant(), delta=st.integers(0, 3 * 86400))
def test_next_run_is_monotone(expr: str, where: tuple[str, datetime], delta: int) -> None:
    zone_name, a = where
    b = a + timedelta(seconds=delta)
    sched = parse_schedule(expr)
    na = compute_next_run(sched, after=a, tz=zone_name)
    nb = compute_next_run(sched, after=b, tz=zone_name)
    assert na is not None and nb is not None
    assert a < na <= nb
    assert nb > b


@given(expr=cron_texts, where=zone_and_instant())
def test_walk_is_strictly_increasing_and_gapless(expr: str, where: tuple[str, datetime]) -> None:
    zone_name, t = where
    sched = parse_schedule(expr)
    fires: list[datetime] = []
    for _ in range(50):
        nxt = compute_next_run(sched, after=t, tz=zone_name)
        assert nxt is not None and nxt > t
        # Nothing was skipped: just before a fire, that fire is the next one.
        assert compute_next_run(sched, after=nxt - timedelta(microseconds=1), tz=zone_name) == nxt
        fires.append(nxt)
        t = nxt
    assert len(set(fires)) == len(fires)
    assert fires == sorted(fires)


# --------------------------------------------------------------------------- intervals


@given(
    seconds=st.integers(1, 10 * 86400),
    slot=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
    lag=st.integers(0, 400 * 86400),
    micro=st.integers(0, 999_999),
)
def test_interval_slots_stay_on_the_grid(
    seconds: int, slot: datetime, lag: int, micro: int
) -> None:
    sched = parse_schedule(f"every {seconds}s")
    assert sched["seconds"] == seconds
    anchor = slot.replace(tzinfo=UTC)
    now = anchor + timedelta(seconds=lag, microseconds=micro)
    assert compute_next_run(sched, after=now) == now + timedelta(seconds=seconds)
    nxt = next_slot(sched, slot=anchor, now=now)
    assert nxt is not None
    step = timedelta(seconds=seconds)
    assert nxt > now >= nxt - step
    assert (nxt - anchor) % step == timedelta(0)


@given(text=st.from_regex(r"(every |in )?[0-9]{1,5} ?(s|m|h|d|w|min|hours?)", fullmatch=True))
def test_duration_text_round_trips(text: str) -> None:
    try:
        sched = parse_schedule(text, now=datetime(2026, 1, 1, tzinfo=UTC))
    except ScheduleError:
        assume(False)
    assert parse_schedule(sched) == sched
    if sched["kind"] == "interval":
        assert parse_schedule(sched["display"]) == sched


# --------------------------------------------------------------------------- robustness


NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def _check_parse(value: Any) -> None:
    try:
        sched = parse_schedule(value, now=NOW)
    except ScheduleError as exc:
        assert isinstance(exc, ValueError)
        return
    # Whatever is accepted is a fixed point of parsing and can be scheduled.
    assert sched["kind"] in ("cron", "interval", "once")
    assert isinstance(sched["display"], str)
    assert parse_schedule(sched) == sched
    nxt = compute_next_run(sched, after=NOW, tz="Europe/Berlin")
    assert nxt is None or nxt > NOW


cron_alphabet = st.sampled_from(list("0123456789*/,-#?LWHR") + ["jan", "MON", "sun", "@daily"])


@given(text=st.text())
@example(text="0 0 30 2 *")
@example(text="H * * * *")
@example(text="0 0 * * * * 2030")
@example(text="1" * 5000 + " * * * *")
@example(text="every 99999999999999999999d")
@example(text="٣ * * * *")
@example(text="\x00")
def test_parse_any_text_is_schedule_or_schedule_error(text: str) -> None:
    _check_parse(text)


@given(
    fields=st.lists(
        st.lists(cron_alphabet, min_size=1, max_size=5).map("".join), min_size=3, max_size=7
    )
)
@example(fields=["0", "0", "L", "*", "*"])
@example(fields=["0", "0", "*", "*", "5#5"])
@example(fields=["0", "0", "31", "2", "mon"])
def test_parse_cron_lookalikes_is_schedule_or_schedule_error(fields: list[str]) -> None:
    _check_parse(" ".join(fields))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
schedule_keys = st.sampled_from(["kind", "expr", "seconds", "run_at", "tz", "display", "x"])
kinds = st.sampled_from(["cron", "interval", "once", "CRON", ""])


@given(
    data=st.dictionaries(
        schedule_keys,
        st.one_of(
            json_values,
            kinds,
            st.sampled_from(["0 9 * * *", "@daily", "2026-01-01T00:00", "Europe/Berlin"]),
            st.datetimes(),
        ),
    )
)
@example(data={"kind": "interval", "seconds": float("inf")})
@example(data={"kind": "interval", "seconds": 10**400})
@example(data={"kind": "cron", "expr": "0 9 * * *", "tz": "../../etc/passwd"})
@example(data={"kind": "cron", "expr": "0 9 * * *", "tz": "\x00"})
@example(data={"kind": "once", "run_at": "2026-01-01T00:00", "tz": ""})
def test_parse_any_dict_is_schedule_or_schedule_error(data: dict[str, Any]) -> None:
    _check_parse(data)


@given(value=json_values | st.binary() | st.builds(object) | st.tuples(st.integers()))
def test_parse_any_object_is_schedule_or_schedule_error(value: Any) -> None:
    _check_parse(value)
