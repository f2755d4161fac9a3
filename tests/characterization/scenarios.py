"""The Phase 0 scenario table: the built-in ticker's behaviour, step by step, in fixed time.

Each :class:`Scenario` is a config plus a list of steps; every step carries an
explicit instant (``at``) or is placed relative to the store (``tick_next``:
the earliest ``next_run_at`` plus an offset). ``test_characterization.py``
runs the steps under frozen time, snapshots the normalised ``jobs.json`` and
ledger after each one and compares the lot with ``golden/<name>.json``.

``checks`` are the SPEC facts each scenario must show, asserted before the
golden comparison, so a regenerated golden can never quietly pin behaviour
that contradicts SPEC.md. They receive the list of normalised step records
(see ``test_characterization.Recorder``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.characterization.actions import FAIL, OK

Record = dict[str, Any]
Check = Callable[[list[Record]], None]


@dataclass(frozen=True)
class Step:
    op: str
    label: str
    at: datetime | None = None
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: list[Step]
    config: str | None = None
    zone: str | None = None  # for the local-time column of fired slots
    checks: list[Check] = field(default_factory=list)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)


# -- step constructors -------------------------------------------------------


def create(
    at: datetime, ref: str, schedule: str | dict[str, Any], action: Any = None, **kw: Any
) -> Step:
    act = action if action is not None else {"kind": "python", "target": OK}
    return Step(
        "create",
        f"create {ref}: {schedule!r}",
        at,
        {"ref": ref, "schedule": schedule, "action": act, "kw": kw},
    )


def tick(at: datetime, label: str = "") -> Step:
    return Step("tick", label or f"tick at {at.isoformat()}", at)


def tick_next(times: int, offset: timedelta = S, label: str = "tick at next_run_at") -> list[Step]:
    """``times`` ticks, each at the earliest ``next_run_at`` of the store plus ``offset``."""
    return [Step("tick_next", f"{label} #{i + 1}", None, {"offset": offset}) for i in range(times)]


def claim(at: datetime, ref: str, token: str, **kw: Any) -> Step:
    return Step(
        "claim", f"claim_job_for_fire {ref} -> {token}", at, {"ref": ref, "token": token, "kw": kw}
    )


def mark(at: datetime, ref: str, token: str, success: bool = True) -> Step:
    return Step(
        "mark",
        f"mark_job_run {ref} {token} success={success}",
        at,
        {"ref": ref, "token": token, "success": success},
    )


def pause(at: datetime, ref: str) -> Step:
    return Step("pause", f"pause {ref}", at, {"ref": ref})


def resume(at: datetime, ref: str) -> Step:
    return Step("resume", f"resume {ref}", at, {"ref": ref})


def crash_after_claim(at: datetime) -> Step:
    """A child process runs ``claim_due_jobs(now=at)`` and exits without running anything."""
    return Step("crash_after_claim", "child process claims due jobs, then dies", at)


def recover(at: datetime) -> Step:
    return Step("recover", "restart: recover_interrupted()", at)


# -- check helpers -------------------------------------------------------------


def step(records: list[Record], label: str) -> Record:
    found = [r for r in records if r["step"] == label]
    assert len(found) == 1, f"no unique step {label!r}"
    return found[0]


def job(record: Record, ref: str) -> dict[str, Any]:
    found = [j for j in record["jobs"] if j["id"] == ref]
    assert len(found) == 1, f"no job {ref!r} after step {record['step']!r}"
    return found[0]


def rows(record: Record, ref: str | None = None, status: str | None = None) -> list[Record]:
    return [
        r
        for r in record["ledger"]
        if (ref is None or r["job_id"] == ref) and (status is None or r["status"] == status)
    ]


def fired(records: list[Record], ref: str) -> list[str]:
    """The slots of ``ref`` that any tick fired, in order."""
    return [f["slot"] for r in records for f in r.get("fired", []) if f["job"] == ref]


def fired_local(records: list[Record], ref: str) -> list[str]:
    return [f["slot_local"] for r in records for f in r.get("fired", []) if f["job"] == ref]


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


# -- the table -------------------------------------------------------------------

T0 = utc(2026, 6, 1, 10, 10)
SLOT = utc(2026, 6, 1, 11, 0)  # first slot of "0 * * * *" after T0


def _on_time(records: list[Record]) -> None:
    r = step(records, "tick at each next_run_at")
    assert r["result"] == 2
    assert fired([r], "job-1") == [iso(utc(2026, 6, 1, 10, 15))]
    assert fired([r], "job-2") == [iso(utc(2026, 6, 1, 10, 15))]
    assert job(r, "job-2")["next_run_at"] == iso(utc(2026, 6, 1, 10, 16, 30))
    assert job(r, "job-1")["next_run_at"] == iso(utc(2026, 6, 1, 10, 20))
    assert job(r, "job-1")["last_status"] == "ok" and job(r, "job-1")["fire_claim"] is None
    ok_rows = rows(r, status="ok")
    assert len(ok_rows) == 2 and all(x["source"] == "tick" for x in ok_rows)
    failing = step(records, "tick: the failing job")
    assert job(failing, "job-3")["last_status"] == "error"
    assert job(failing, "job-3")["failure_streak"] == 1
    assert rows(failing, "job-3", "error")[0]["error"] == "RuntimeError: boom"
    again = step(records, "tick again at the same instant")
    assert again["result"] == 0 and again["ledger"] == failing["ledger"]


ON_TIME = Scenario(
    "on_time_fire",
    [
        create(T0, "job-1", "*/5 * * * *"),
        # An interval counts from its creation: 10:13:30 + 90s = 10:15:00.
        create(utc(2026, 6, 1, 10, 13, 30), "job-2", "every 90s"),
        tick(utc(2026, 6, 1, 10, 14, 59), "tick one second before either is due"),
        Step("tick", "tick at each next_run_at", utc(2026, 6, 1, 10, 15)),
        create(utc(2026, 6, 1, 10, 16), "job-3", "*/5 * * * *", {"kind": "python", "target": FAIL}),
        tick(utc(2026, 6, 1, 10, 20), "tick: the failing job"),
        tick(utc(2026, 6, 1, 10, 20), "tick again at the same instant"),
    ],
    checks=[_on_time],
)


def _late_within_grace(records: list[Record]) -> None:
    r = step(records, "tick 29m late (grace of an hourly job is 30m)")
    assert r["result"] == 1
    assert fired([r], "job-1") == [iso(SLOT)]
    assert job(r, "job-1")["next_run_at"] == iso(SLOT + H)
    r = step(records, "tick exactly 30m late (== grace)")
    assert r["result"] == 1
    assert fired(records, "job-1")[-1] == iso(SLOT + H)


LATE_WITHIN_GRACE = Scenario(
    "late_within_grace",
    [
        create(T0, "job-1", "0 * * * *"),
        tick(SLOT + 29 * M, "tick 29m late (grace of an hourly job is 30m)"),
        tick(SLOT + H + 30 * M, "tick exactly 30m late (== grace)"),
    ],
    checks=[_late_within_grace],
)


def _late_once(records: list[Record]) -> None:
    r = step(records, "tick 3h30m late, catch_up=once")
    assert r["result"] == 1, "once: fires exactly once, not a burst of 4"
    assert len(rows(r, "job-1", "ok")) == 1
    assert job(r, "job-1")["next_run_at"] == iso(SLOT + 4 * H)
    assert job(r, "job-1")["repeat"]["completed"] == 1


LATE_BEYOND_GRACE_ONCE = Scenario(
    "late_beyond_grace_once",
    [
        create(T0, "job-1", "0 * * * *"),
        tick(SLOT + 3 * H + 30 * M, "tick 3h30m late, catch_up=once"),
        tick(SLOT + 4 * H, "tick at the next slot"),
    ],
    checks=[_late_once],
)


def _late_skip(records: list[Record]) -> None:
    r = step(records, "tick 3h30m late")
    assert r["result"] == 1, "only the catch_up=once job fires"
    assert fired([r], "job-1") == []
    j1 = job(r, "job-1")
    assert j1["next_run_at"] == iso(SLOT + 4 * H)
    assert j1["last_status"] == "missed" and j1["repeat"]["completed"] == 0
    missed = rows(r, "job-1", "missed")
    assert len(missed) == 1 and missed[0]["scheduled_at"] == iso(SLOT)
    assert rows(r, "job-1", "ok") == []
    assert len(rows(r, "job-2", "ok")) == 1 and rows(r, "job-2", "missed") == []
    nxt = step(records, "tick at the next slot")
    assert fired(records, "job-1") == [iso(SLOT + 4 * H)]
    assert nxt["result"] == 2


LATE_BEYOND_GRACE_SKIP = Scenario(
    "late_beyond_grace_skip",
    [
        create(T0, "job-1", "0 * * * *"),
        create(T0, "job-2", "0 * * * *", catch_up="once"),
        tick(SLOT + 3 * H + 30 * M, "tick 3h30m late"),
        tick(SLOT + 4 * H, "tick at the next slot"),
    ],
    config="cron:\n  catch_up: skip\n",
    checks=[_late_skip],
)

RUN_A = utc(2026, 6, 1, 11, 0)
RUN_B = utc(2026, 6, 1, 12, 0)


def _one_shot(records: list[Record]) -> None:
    a = step(records, "tick 119s after job-1's run_at")
    assert a["result"] == 1 and fired(records, "job-1") == [iso(RUN_A)]
    j1 = job(a, "job-1")
    assert j1["state"] == "completed" and j1["next_run_at"] is None
    assert j1["last_status"] == "ok" and j1["repeat"] == {"times": 1, "completed": 1}
    b = step(records, "tick 121s after job-2's run_at")
    assert b["result"] == 0 and fired(records, "job-2") == []
    j2 = job(b, "job-2")
    assert j2["state"] == "completed" and j2["last_status"] == "missed"
    assert j2["next_run_at"] is None
    missed = rows(b, "job-2", "missed")
    assert len(missed) == 1 and missed[0]["scheduled_at"] == iso(RUN_B)
    last = step(records, "tick an hour later")
    assert last["result"] == 0 and last["ledger"] == b["ledger"]


ONE_SHOT_LATENESS = Scenario(
    "one_shot_119s_vs_121s",
    [
        create(T0, "job-1", RUN_A.isoformat()),
        create(T0, "job-2", RUN_B.isoformat()),
        tick(RUN_A + 119 * S, "tick 119s after job-1's run_at"),
        tick(RUN_B + 121 * S, "tick 121s after job-2's run_at"),
        tick(RUN_B + H, "tick an hour later"),
    ],
    checks=[_one_shot],
)


def _repeat(records: list[Record]) -> None:
    assert fired(records, "job-1") == [iso(T0 + 10 * M), iso(T0 + 20 * M)]
    r = step(records, "second run (last of 2)")
    j = job(r, "job-1")
    assert j["state"] == "completed" and j["next_run_at"] is None
    assert j["repeat"] == {"times": 2, "completed": 2}
    assert step(records, "tick after exhaustion")["result"] == 0
    assert step(records, "claim_job_for_fire job-1 -> token-x")["result"] is None


REPEAT_EXHAUSTION = Scenario(
    "repeat_n_exhaustion",
    [
        create(T0, "job-1", "every 10m", repeat=2),
        tick(T0 + 10 * M, "first run"),
        tick(T0 + 20 * M, "second run (last of 2)"),
        tick(T0 + 30 * M, "tick after exhaustion"),
        claim(T0 + 30 * M, "job-1", "token-x"),
    ],
    checks=[_repeat],
)


def _pause_resume(records: list[Record]) -> None:
    p = step(records, "pause job-1")
    assert job(p, "job-1")["state"] == "paused" and job(p, "job-1")["next_run_at"] is None
    assert step(records, "tick while paused")["result"] == 0
    r = step(records, "resume job-1")
    assert job(r, "job-1")["next_run_at"] == iso(utc(2026, 6, 1, 16, 0))
    assert step(records, "tick right after resume")["result"] == 0, "no burst"
    assert fired(records, "job-1") == [iso(SLOT), iso(utc(2026, 6, 1, 16, 0))]
    last = records[-1]
    assert rows(last, "job-1", "missed") == [] and len(rows(last, "job-1", "ok")) == 2


PAUSE_RESUME = Scenario(
    "pause_resume_no_burst",
    [
        create(T0, "job-1", "0 * * * *"),
        tick(SLOT, "tick at 11:00"),
        pause(SLOT + 30 * M, "job-1"),
        tick(SLOT + 2 * H, "tick while paused"),
        resume(utc(2026, 6, 1, 15, 40), "job-1"),
        tick(utc(2026, 6, 1, 15, 40, 1), "tick right after resume"),
        tick(utc(2026, 6, 1, 16, 0), "tick at 16:00"),
    ],
    checks=[_pause_resume],
)

E0 = utc(2026, 6, 1, 10, 0)


def _overlap(records: list[Record]) -> None:
    r = step(records, "tick while token-a's claim is live (age 60s < ttl 300s)")
    assert r["result"] == 0
    j = job(r, "job-1")
    assert j["fire_claim"]["token"] == "token-a"
    assert j["next_run_at"] == iso(E0 + 3 * M)
    skipped = rows(r, "job-1", "skipped")
    assert len(skipped) == 1 and skipped[0]["scheduled_at"] == iso(E0 + 2 * M)
    assert j["last_status"] == "skipped"
    m = step(records, "mark_job_run job-1 token-a success=True")
    assert m["result"] is True and job(m, "job-1")["fire_claim"] is None
    assert fired(records, "job-1") == [iso(E0 + 3 * M)]


OVERLAP = Scenario(
    "overlap_live_claim",
    [
        create(E0, "job-1", "every 1m"),
        claim(E0 + M, "job-1", "token-a"),
        tick(E0 + 2 * M, "tick while token-a's claim is live (age 60s < ttl 300s)"),
        mark(E0 + 2 * M + 10 * S, "job-1", "token-a"),
        tick(E0 + 3 * M, "tick at the next slot"),
    ],
    checks=[_overlap],
)


def _stale(records: list[Record]) -> None:
    live = step(records, "tick, claim age 60s < ttl 120s: overlap")
    assert live["result"] == 0 and len(rows(live, "job-1", "skipped")) == 1
    stale = step(records, "tick, claim age 120s == ttl: stale, fires")
    assert stale["result"] == 1
    assert fired(records, "job-1") == [iso(E0 + 3 * M)]
    late = step(records, "mark_job_run job-1 token-a success=True")
    assert late["result"] is False, "a stale owner cannot record over a newer run"
    assert late["jobs"] == stale["jobs"] and late["ledger"] == stale["ledger"]


STALE_CLAIM = Scenario(
    "stale_claim_after_ttl",
    [
        create(E0, "job-1", "every 1m"),
        claim(E0 + M, "job-1", "token-a"),
        tick(E0 + 2 * M, "tick, claim age 60s < ttl 120s: overlap"),
        tick(E0 + 3 * M, "tick, claim age 120s == ttl: stale, fires"),
        mark(E0 + 3 * M + 5 * S, "job-1", "token-a"),
    ],
    config="cron:\n  claim_ttl: 120\n",
    checks=[_stale],
)

C0 = utc(2026, 6, 1, 10, 10)


def _crash(records: list[Record]) -> None:
    crash = step(records, "child process claims due jobs, then dies")
    assert crash["result"] == ["token-1"]
    j = job(crash, "job-1")
    assert j["fire_claim"]["by"] == "owner-other" and j["next_run_at"] == iso(SLOT + H)
    assert [r["status"] for r in rows(crash, "job-1")] == ["claimed"]
    rec = step(records, "restart: recover_interrupted()")
    assert rec["result"] == 1
    (row,) = rows(rec, "job-1")
    assert row["status"] == "unknown" and row["scheduled_at"] == iso(SLOT)
    # The dead owner's claim is released with its own token: no TTL wait.
    j = job(rec, "job-1")
    assert j["fire_claim"] is None and j["last_status"] == "interrupted"
    same = step(records, "tick after the restart, same slot window")
    assert same["result"] == 0, "the crashed slot is not rerun"
    assert fired(records, "job-1") == [iso(SLOT + H)]
    last = records[-1]
    assert [r["status"] for r in rows(last, "job-1")] == ["unknown", "ok"]


CRASH = Scenario(
    "crash_between_claim_and_run",
    [
        create(C0, "job-1", "0 * * * *"),
        crash_after_claim(SLOT + 5 * S),
        recover(SLOT + M),
        tick(SLOT + 2 * M, "tick after the restart, same slot window"),
        tick(SLOT + H, "tick at the next slot"),
    ],
    checks=[_crash],
)


# -- DST: 09:00 and 02:30 daily jobs around both changes, two zones ----------------


def _dst_check(expect: dict[str, list[str]]) -> Check:
    def check(records: list[Record]) -> None:
        for ref, local in expect.items():
            assert fired_local(records, ref) == local, ref
            slots = fired(records, ref)
            assert slots == sorted(set(slots)), f"{ref}: repeated or out-of-order fire"

    return check


DST_BERLIN_SPRING = Scenario(
    "dst_berlin_spring_forward",
    [
        create(utc(2026, 3, 27, 12), "job-1", "0 9 * * *"),
        create(utc(2026, 3, 27, 12), "job-2", "30 2 * * *"),
        *tick_next(6),
    ],
    config="cron:\n  timezone: Europe/Berlin\n",
    zone="Europe/Berlin",
    checks=[
        _dst_check(
            {
                "job-1": [
                    "2026-03-28 09:00:00 CET",
                    "2026-03-29 09:00:00 CEST",
                    "2026-03-30 09:00:00 CEST",
                ],
                # 02:30 does not exist on the 29th: it fires once, at 03:00 CEST.
                "job-2": [
                    "2026-03-28 02:30:00 CET",
                    "2026-03-29 03:00:00 CEST",
                    "2026-03-30 02:30:00 CEST",
                ],
            }
        )
    ],
)

DST_BERLIN_FALL = Scenario(
    "dst_berlin_fall_back",
    [
        create(utc(2026, 10, 23, 12), "job-1", "0 9 * * *"),
        create(utc(2026, 10, 23, 12), "job-2", "30 2 * * *"),
        *tick_next(6),
    ],
    config="cron:\n  timezone: Europe/Berlin\n",
    zone="Europe/Berlin",
    checks=[
        _dst_check(
            {
                "job-1": [
                    "2026-10-24 09:00:00 CEST",
                    "2026-10-25 09:00:00 CET",
                    "2026-10-26 09:00:00 CET",
                ],
                # 02:30 happens twice on the 25th: a fixed hour fires on the first pass only.
                "job-2": [
                    "2026-10-24 02:30:00 CEST",
                    "2026-10-25 02:30:00 CEST",
                    "2026-10-26 02:30:00 CET",
                ],
            }
        )
    ],
)

DST_TORONTO_SPRING = Scenario(
    "dst_toronto_spring_forward",
    [
        create(utc(2026, 3, 6, 18), "job-1", "0 9 * * *", tz="America/Toronto"),
        create(utc(2026, 3, 6, 18), "job-2", "30 2 * * *", tz="America/Toronto"),
        *tick_next(6),
    ],
    zone="America/Toronto",
    checks=[
        _dst_check(
            {
                "job-1": [
                    "2026-03-07 09:00:00 EST",
                    "2026-03-08 09:00:00 EDT",
                    "2026-03-09 09:00:00 EDT",
                ],
                "job-2": [
                    "2026-03-07 02:30:00 EST",
                    "2026-03-08 03:00:00 EDT",
                    "2026-03-09 02:30:00 EDT",
                ],
            }
        )
    ],
)

DST_TORONTO_FALL = Scenario(
    "dst_toronto_fall_back",
    [
        create(utc(2026, 10, 30, 18), "job-1", "0 9 * * *", tz="America/Toronto"),
        create(utc(2026, 10, 30, 18), "job-2", "30 2 * * *", tz="America/Toronto"),
        # Toronto's fold is 01:00-02:00, so 02:30 is unambiguous; 01:30 is the doubled one.
        create(utc(2026, 10, 30, 18), "job-3", "30 1 * * *", tz="America/Toronto"),
        *tick_next(9),
    ],
    zone="America/Toronto",
    checks=[
        _dst_check(
            {
                "job-1": [
                    "2026-10-31 09:00:00 EDT",
                    "2026-11-01 09:00:00 EST",
                    "2026-11-02 09:00:00 EST",
                ],
                "job-2": [
                    "2026-10-31 02:30:00 EDT",
                    "2026-11-01 02:30:00 EST",
                    "2026-11-02 02:30:00 EST",
                ],
                "job-3": [
                    "2026-10-31 01:30:00 EDT",
                    "2026-11-01 01:30:00 EDT",
                    "2026-11-02 01:30:00 EST",
                ],
            }
        )
    ],
)


SCENARIOS: list[Scenario] = [
    ON_TIME,
    LATE_WITHIN_GRACE,
    LATE_BEYOND_GRACE_ONCE,
    LATE_BEYOND_GRACE_SKIP,
    ONE_SHOT_LATENESS,
    REPEAT_EXHAUSTION,
    PAUSE_RESUME,
    OVERLAP,
    STALE_CLAIM,
    CRASH,
    DST_BERLIN_SPRING,
    DST_BERLIN_FALL,
    DST_TORONTO_SPRING,
    DST_TORONTO_FALL,
]
