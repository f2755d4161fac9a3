"""SPEC §3 (the claim, missed runs) and §13 (retries) on the rules every store shares.

``cron.claim`` is the pure form of ``claim_job_for_fire`` / ``claim_due_jobs`` /
``mark_job_run``: each backend calls it inside its compare-and-set. These tests drive it
on job dicts, so each SPEC sentence is pinned in milliseconds (the mutation gate runs
them per mutant, tests/MUTATION.md); the API and contract suites prove the same rules
through the stores. Times are injected; the configured zone is UTC (the ``home`` fixture).
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cron import claim
from cron.claim import ClaimReason, LedgerEvent, RetryClaim
from cron.schedule import parse_schedule, to_iso

T0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
TTL = 300.0
OWNER = "host:1"

Job = dict[str, Any]


@pytest.fixture(autouse=True)
def _home(home: object) -> None:
    """An isolated home: config defaults, configured zone UTC."""


def make_job(
    schedule: str | dict[str, Any],
    *,
    next_run_at: datetime | None = T0,
    tz: str | None = None,
    **fields: Any,
) -> Job:
    sched = parse_schedule(schedule, now=T0 - H) if isinstance(schedule, str) else dict(schedule)
    if tz is not None:
        sched["tz"] = tz
    job: Job = {
        "id": "abcdef012345",
        "name": "rule",
        "schedule": sched,
        "action": {"kind": "command", "command": "true"},
        "repeat": {"times": None, "completed": 0},
        "enabled": True,
        "state": "scheduled",
        "next_run_at": to_iso(next_run_at) if next_run_at is not None else None,
        "last_run_at": None,
        "last_status": None,
        "last_error": None,
        "failure_streak": 0,
        "fire_claim": None,
    }
    job.update(fields)
    return job


def once_job(run_at: datetime, **fields: Any) -> Job:
    sched = {"kind": "once", "run_at": to_iso(run_at), "display": "once"}
    fields.setdefault("repeat", {"times": 1, "completed": 0})
    return make_job(sched, next_run_at=run_at, **fields)


def held(job: Job, at: datetime, token: str = "t" * 32) -> Job:
    job["fire_claim"] = {
        "token": token,
        "at": to_iso(at),
        "by": "other:2",
        "scheduled_at": job["next_run_at"],
    }
    return job


def claim_at(job: Job | None, now: datetime, **kw: Any) -> claim.ClaimOutcome:
    kw.setdefault("catch_up_default", "once")
    return claim.try_claim(job, now=now, claim_ttl=TTL, owner=OWNER, **kw)


def sweep_at(job: Job, now: datetime, catch_up_default: str = "once") -> claim.ClaimOutcome:
    return claim.sweep_due(
        job, now=now, claim_ttl=TTL, catch_up_default=catch_up_default, owner=OWNER
    )


def assert_lost(outcome: claim.ClaimOutcome, code: ClaimReason) -> None:
    assert outcome.token is None and not outcome.won
    assert outcome.code is code, outcome.reason
    # callers branch on ``code``; ``reason`` is the line a human reads (CLI, logs)
    assert isinstance(outcome.reason, str) and outcome.reason.strip(), outcome


# -- §3.1-3: who never gets a token, and a lost claim changes nothing --------------------------


@pytest.mark.parametrize("force", [False, True])
def test_missing_or_completed_job_gets_none_even_forced(force: bool) -> None:
    assert_lost(claim_at(None, T0, force=force), ClaimReason.NO_SUCH_JOB)
    job = make_job("every 1m", state="completed")
    before = copy.deepcopy(job)
    assert_lost(claim_at(job, T0, force=force), ClaimReason.COMPLETED)
    assert job == before


@pytest.mark.parametrize("fields", [{"enabled": False}, {"state": "paused"}])
def test_paused_or_disabled_needs_force_and_stays_paused(fields: dict[str, Any]) -> None:
    job = make_job("every 1m", **fields)
    before = copy.deepcopy(job)
    assert_lost(claim_at(job, T0), ClaimReason.PAUSED)
    assert job == before

    won = claim_at(job, T0, force=True)
    assert won.won and won.code is ClaimReason.FORCED
    assert job["state"] == before["state"] and job["enabled"] == before["enabled"]


@pytest.mark.parametrize(
    ("age", "live"),
    [(0.0, True), (TTL - 1, True), (TTL, False), (TTL + 1, False), (-1.0, False)],
)
def test_a_claim_is_live_while_its_age_is_in_zero_to_ttl(age: float, live: bool) -> None:
    job = held(make_job("every 1m"), T0 - timedelta(seconds=age))
    assert claim.claim_is_live(job, T0, TTL) is live
    before = copy.deepcopy(job)
    outcome = claim_at(job, T0)
    if live:
        assert_lost(outcome, ClaimReason.LIVE_CLAIM)
        assert job == before
        # force does not break a live claim either: no second copy of a running job
        assert_lost(claim_at(job, T0, force=True), ClaimReason.LIVE_CLAIM)
        assert job == before
    else:
        assert outcome.won  # a stale (or future-dated) claim never blocks the job
        assert job["fire_claim"]["token"] == outcome.token


def test_no_claim_or_a_claim_without_a_date_is_not_live() -> None:
    job = make_job("every 1m")
    assert claim.claim_is_live(job, T0, TTL) is False
    job["fire_claim"] = {"token": "x", "by": OWNER}
    assert claim.claim_is_live(job, T0, TTL) is False
    assert claim_at(job, T0).won


def test_not_due_and_no_next_run_get_none_and_change_nothing() -> None:
    job = make_job("every 1m", next_run_at=T0 + S)
    before = copy.deepcopy(job)
    outcome = claim_at(job, T0)
    assert_lost(outcome, ClaimReason.NOT_DUE)
    assert to_iso(T0 + S) in outcome.reason
    job2 = make_job("every 1m", next_run_at=None)
    assert_lost(claim_at(job2, T0), ClaimReason.NO_NEXT_RUN)
    assert job == before


def test_due_exactly_now_is_claimed() -> None:
    assert claim_at(make_job("every 1m", next_run_at=T0), T0).won


def test_scheduled_at_before_next_run_or_after_now_gets_none() -> None:
    job = make_job("every 1m", next_run_at=T0 - M)
    before = copy.deepcopy(job)
    stale = claim_at(job, T0, scheduled_at=T0 - 2 * M)
    assert_lost(stale, ClaimReason.STALE_SLOT)
    assert to_iso(T0 - 2 * M) in stale.reason and to_iso(T0 - M) in stale.reason
    future = claim_at(job, T0, scheduled_at=T0 + S)
    assert_lost(future, ClaimReason.FUTURE_SLOT)
    assert to_iso(T0 + S) in future.reason
    assert job == before


# The reason text of a claim is what a client reads: the webhook answers a lost claim 409
# {"status": "not_claimed", "reason": <text>} (SPEC §7), ``cronkit fire`` prints "not fired:
# job ...: <text>", ``cronkit run`` "not run: <text>", and ``jobs.claim_job_for_fire_ex``
# returns it (a missing job's text only there: the webhook answers 404, the CLI its own
# line). One situation per reason ``try_claim`` gives, and the exact text.
_REASONS: list[tuple[str, Any, dict[str, Any], ClaimReason, str]] = [
    ("missing", lambda: None, {}, ClaimReason.NO_SUCH_JOB, "no such job"),
    (
        "completed",
        lambda: make_job("every 1m", state="completed"),
        {},
        ClaimReason.COMPLETED,
        "job is completed",
    ),
    (
        "paused",
        lambda: make_job("every 1m", state="paused"),
        {},
        ClaimReason.PAUSED,
        "job is paused",
    ),
    (
        "disabled",
        lambda: make_job("every 1m", enabled=False),
        {},
        ClaimReason.PAUSED,
        "job is paused",
    ),
    (
        "live claim",
        lambda: held(make_job("every 1m"), T0 - M),
        {},
        ClaimReason.LIVE_CLAIM,
        "a run of this job is still in progress (live claim)",
    ),
    (
        "no next run",
        lambda: make_job("every 1m", next_run_at=None),
        {},
        ClaimReason.NO_NEXT_RUN,
        "job has no next run",
    ),
    (
        "not due",
        lambda: make_job("every 1m", next_run_at=T0 + S),
        {},
        ClaimReason.NOT_DUE,
        "not due until 2026-06-01T10:00:01+00:00",
    ),
    (
        "stale slot",
        lambda: make_job("every 1m", next_run_at=T0 - M),
        {"scheduled_at": T0 - 2 * M},
        ClaimReason.STALE_SLOT,
        "slot 2026-06-01T09:58:00+00:00 already fired or superseded "
        "(next slot is 2026-06-01T09:59:00+00:00)",
    ),
    (
        "future slot",
        lambda: make_job("every 1m", next_run_at=T0 - M),
        {"scheduled_at": T0 + S},
        ClaimReason.FUTURE_SLOT,
        "slot 2026-06-01T10:00:01+00:00 is in the future",
    ),
    (
        "one-shot missed",
        lambda: once_job(T0 - 121 * S),
        {},
        ClaimReason.MISSED,
        "one-shot is 121s late (> 120s): missed",
    ),
    (
        "beyond grace",
        lambda: make_job("every 10m", next_run_at=T0 - 301 * S, catch_up="skip"),
        {},
        ClaimReason.MISSED,
        "slot is 301s late, beyond grace (catch_up=skip)",
    ),
    (
        "forced",
        lambda: make_job("every 1m", state="paused"),
        {"force": True},
        ClaimReason.FORCED,
        "claimed (forced)",
    ),
    ("claimed", lambda: make_job("every 1m"), {}, ClaimReason.CLAIMED, "claimed"),
]


@pytest.mark.parametrize(
    ("build", "kw", "code", "text"), [r[1:] for r in _REASONS], ids=[r[0] for r in _REASONS]
)
def test_each_claim_reason_has_the_text_clients_read(
    build: Any, kw: dict[str, Any], code: ClaimReason, text: str
) -> None:
    outcome = claim_at(build(), T0, **kw)
    assert (outcome.code, outcome.reason) == (code, text)
    assert outcome.won is (code in (ClaimReason.CLAIMED, ClaimReason.FORCED))


def test_a_job_document_without_an_enabled_field_is_enabled() -> None:
    # SPEC §3 lists ``enabled``; a document written without it (an older one) is enabled:
    # it claims, and its held claim passes to a retry attempt (§13) like any other.
    job = make_job("every 1h", next_run_at=T0)
    del job["enabled"]
    outcome = claim_at(job, T0)
    assert outcome.won and outcome.code is ClaimReason.CLAIMED
    verdict, new = claim.retry_claim(
        job, outcome.token or "", now=T0 + M, start_at=T0 + 2 * M, attempt=2
    )
    assert verdict is RetryClaim.GRANTED and new is not None
    assert claim.may_start_retry(job, new, now=T0 + 2 * M) is RetryClaim.GRANTED


# -- §3: what a won claim writes ----------------------------------------------------------------


def test_a_won_claim_stamps_everything_and_advances_past_now() -> None:
    job = make_job("every 10m", next_run_at=T0 - 25 * M)  # slots T0-25m, -15m, -5m, +5m
    outcome = claim_at(job, T0)
    assert outcome.won and outcome.code is ClaimReason.CLAIMED
    assert outcome.reason == "claimed"
    assert re.fullmatch(r"[0-9a-f]{32}", outcome.token or "")
    assert outcome.scheduled_at == to_iso(T0 - 25 * M)
    assert outcome.events == []
    assert job["fire_claim"] == {
        "token": outcome.token,
        "at": to_iso(T0),
        "by": OWNER,
        "scheduled_at": to_iso(T0 - 25 * M),
    }
    assert job["last_scheduled_at"] == to_iso(T0 - 25 * M)
    assert job["repeat"]["completed"] == 1
    # the first slot strictly after now, on the series' own phase (no drift)
    assert job["next_run_at"] == to_iso(T0 + 5 * M)
    assert job["state"] == "scheduled"


def test_two_claims_get_two_different_tokens() -> None:
    a = claim_at(make_job("every 1m"), T0)
    b = claim_at(make_job("every 1m"), T0)
    assert a.token != b.token


def test_a_cron_claim_advances_to_the_next_cron_slot_after_now() -> None:
    job = make_job("0 * * * *", next_run_at=T0 - 2 * H)
    assert claim_at(job, T0 + 10 * M).won
    assert job["next_run_at"] == to_iso(T0 + H)


def test_a_claim_without_a_repeat_field_starts_the_count() -> None:
    job = make_job("every 1m")
    del job["repeat"]
    assert claim_at(job, T0).won
    assert job["repeat"] == {"times": None, "completed": 1}


def test_the_last_of_repeat_times_leaves_no_next_run_and_completes_when_marked() -> None:
    job = make_job("every 1m", repeat={"times": 2, "completed": 1})
    outcome = claim_at(job, T0)
    assert outcome.won
    assert job["repeat"] == {"times": 2, "completed": 2}
    assert claim.is_spent(job)
    assert job["next_run_at"] is None
    assert job["state"] == "scheduled"  # completed only once its run is marked
    assert claim.apply_run_result(job, outcome.token or "", now=T0 + S, status="ok", error=None)
    assert job["state"] == "completed"


def test_a_repeat_without_a_completed_count_counts_from_zero() -> None:
    # An older document may carry {"times": N} alone: its first claim is run 1 of N.
    job = make_job("every 1m", repeat={"times": 3})
    assert claim_at(job, T0).won
    assert job["repeat"] == {"times": 3, "completed": 1}
    assert job["next_run_at"] == to_iso(T0 + M)


def test_a_result_completes_a_spent_job_only_once_it_has_no_next_run() -> None:
    # Completed means "no slot left": a spent job that still names a next run (its
    # document edited between the claim and the result) stays scheduled, for the tick
    # to settle, rather than being completed with a slot pending.
    job = make_job("every 1m", repeat={"times": 2, "completed": 1})
    token = claim_at(job, T0).token or ""
    assert claim.is_spent(job) and job["next_run_at"] is None
    job["next_run_at"] = to_iso(T0 + M)
    assert claim.apply_run_result(job, token, now=T0 + S, status="ok", error=None)
    assert job["state"] == "scheduled"


def test_a_claim_short_of_repeat_times_keeps_a_next_run() -> None:
    job = make_job("every 1m", repeat={"times": 3, "completed": 1})
    outcome = claim_at(job, T0)
    assert job["next_run_at"] == to_iso(T0 + M)
    assert claim.apply_run_result(job, outcome.token or "", now=T0 + S, status="ok", error=None)
    assert job["state"] == "scheduled"


def test_a_claimed_slot_after_next_run_records_the_passed_slots_missed() -> None:
    job = make_job("every 1m", next_run_at=T0 - 3 * M, name="nightly")
    outcome = claim_at(job, T0, scheduled_at=T0 - M)
    assert outcome.won and outcome.scheduled_at == to_iso(T0 - M)
    assert job["fire_claim"]["scheduled_at"] == to_iso(T0 - M)
    assert outcome.events == [
        LedgerEvent(
            "abcdef012345",
            "missed",
            to_iso(t),
            f"passed over by a fire of {to_iso(T0 - M)}",
            "nightly",
        )
        for t in (T0 - 3 * M, T0 - 2 * M)
    ]
    assert job["next_run_at"] == to_iso(T0 + M)


def test_a_claim_of_next_run_itself_records_nothing_missed() -> None:
    job = make_job("every 1m", next_run_at=T0 - M)
    assert claim_at(job, T0, scheduled_at=T0 - M).events == []


def test_passed_over_rows_stop_at_the_limit() -> None:
    job = make_job("every 1s", next_run_at=T0 - 500 * S)
    outcome = claim_at(job, T0, scheduled_at=T0)
    assert len(outcome.events) == claim.MISSED_ROWS_LIMIT
    assert outcome.events[0].scheduled_at == to_iso(T0 - 500 * S)
    assert outcome.events[-1].scheduled_at == to_iso(T0 - 401 * S)


def test_passed_over_slots_are_the_jobs_own_zone_across_dst() -> None:
    # 09:00 in Berlin across the fall-back of 2026-10-25: 07:00Z before it, 08:00Z after;
    # the configured zone is UTC (where 09:00 would be 09:00Z).
    due = datetime(2026, 10, 24, 7, 0, tzinfo=UTC)
    now = datetime(2026, 10, 27, 8, 30, tzinfo=UTC)
    job = make_job("0 9 * * *", next_run_at=due, tz="Europe/Berlin")
    outcome = claim_at(job, now, scheduled_at=datetime(2026, 10, 27, 8, 0, tzinfo=UTC))
    assert outcome.won
    assert [e.scheduled_at for e in outcome.events] == [
        "2026-10-24T07:00:00+00:00",
        "2026-10-25T08:00:00+00:00",
        "2026-10-26T08:00:00+00:00",
    ]
    assert job["next_run_at"] == "2026-10-28T08:00:00+00:00"


# -- §3 force ------------------------------------------------------------------------------------


def test_a_forced_run_of_a_due_job_consumes_the_due_slot() -> None:
    job = make_job("*/10 * * * *", next_run_at=T0 - 10 * M)
    outcome = claim_at(job, T0, force=True)
    assert outcome.won and outcome.code is ClaimReason.FORCED
    assert outcome.reason == "claimed (forced)"
    assert outcome.scheduled_at == to_iso(T0)  # no scheduled_at: the slot is now
    # the claim records its owner (SPEC §3 fire_claim.by), forced or not
    assert job["fire_claim"] == {
        "token": outcome.token,
        "at": to_iso(T0),
        "by": OWNER,
        "scheduled_at": to_iso(T0),
    }
    assert job["next_run_at"] == to_iso(T0 + 10 * M)
    assert job["repeat"]["completed"] == 1


def test_a_forced_run_exactly_at_the_due_slot_consumes_it() -> None:
    # next_run_at <= now is due (§3.4), so a forced run at that very instant fires the due
    # slot: next_run_at moves on, or the tick would fire the same slot a second time.
    job = make_job("every 10m", next_run_at=T0)
    assert claim_at(job, T0, force=True).won
    assert job["next_run_at"] == to_iso(T0 + 10 * M)


def test_a_forced_run_of_a_job_not_due_keeps_its_next_run() -> None:
    job = make_job("every 10m", next_run_at=T0 + 5 * M)
    assert claim_at(job, T0, force=True).won
    assert job["next_run_at"] == to_iso(T0 + 5 * M)


def test_a_forced_run_fires_the_slot_it_names() -> None:
    job = make_job("*/10 * * * *", next_run_at=T0 - 10 * M)
    slot = T0 - 30 * M  # force ignores the stale / future rules, but records the slot asked for
    outcome = claim_at(job, T0, force=True, scheduled_at=slot)
    assert outcome.scheduled_at == to_iso(slot)
    assert job["fire_claim"]["scheduled_at"] == to_iso(slot)
    assert job["last_scheduled_at"] == to_iso(slot)
    assert job["next_run_at"] == to_iso(T0 + 10 * M)


def test_a_forced_run_of_a_job_without_next_run_claims() -> None:
    job = make_job("every 10m", next_run_at=None)
    assert claim_at(job, T0, force=True).won
    assert job["next_run_at"] is None


def test_a_forced_last_repeat_leaves_no_next_run_even_when_not_due() -> None:
    job = make_job("every 10m", next_run_at=T0 + 5 * M, repeat={"times": 1, "completed": 0})
    assert claim_at(job, T0, force=True).won
    assert job["next_run_at"] is None


# -- §3 missed runs: one-shots, grace, catch_up --------------------------------------------------


@pytest.mark.parametrize(("late", "fires"), [(0, True), (120, True), (121, False)])
def test_a_one_shot_more_than_120s_late_is_missed(late: int, fires: bool) -> None:
    job = once_job(T0 - late * S)
    outcome = claim_at(job, T0)
    assert outcome.won is fires
    if not fires:
        assert outcome.code is ClaimReason.MISSED
        assert "121s late" in outcome.reason
    else:
        assert job["next_run_at"] is None


def test_a_tick_completes_a_one_shot_more_than_120s_late_with_a_missed_row() -> None:
    job = once_job(T0 - 121 * S, name="once")
    outcome = sweep_at(job, T0)
    assert_lost(outcome, ClaimReason.MISSED)
    assert job["state"] == "completed" and job["next_run_at"] is None
    assert job["last_status"] == "missed"
    assert job["last_error"] == "one-shot was 121s late (> 120s)"
    assert outcome.events == [
        LedgerEvent("abcdef012345", "missed", to_iso(T0 - 121 * S), job["last_error"], "once")
    ]
    assert outcome.scheduled_at == to_iso(T0 - 121 * S)


def test_a_tick_fires_a_one_shot_120s_late() -> None:
    job = once_job(T0 - 120 * S)
    outcome = sweep_at(job, T0)
    assert outcome.won and outcome.scheduled_at == to_iso(T0 - 120 * S)
    assert job["next_run_at"] is None


# every 10m: period 600 s, grace clamp(300, 120, 7200) = 300 s
@pytest.mark.parametrize(
    ("late", "policy", "fires"),
    [(300, "skip", True), (301, "skip", False), (301, "once", True), (3000, "once", True)],
)
def test_beyond_grace_skip_misses_once_fires_once_now(late: int, policy: str, fires: bool) -> None:
    job = make_job("every 10m", next_run_at=T0 - late * S, catch_up=policy)
    outcome = claim_at(job, T0, catch_up_default="once" if policy == "skip" else "skip")
    assert outcome.won is fires
    if not fires:
        assert outcome.code is ClaimReason.MISSED and "beyond grace" in outcome.reason


def test_the_configured_catch_up_applies_when_the_job_names_none() -> None:
    for default, fires in (("skip", False), ("once", True)):
        job = make_job("every 10m", next_run_at=T0 - 301 * S)
        assert claim_at(job, T0, catch_up_default=default).won is fires
    assert claim.catch_up_policy({"catch_up": "bogus"}, "skip") == "skip"
    assert claim.catch_up_policy({"catch_up": "once"}, "skip") == "once"
    assert claim.catch_up_policy({}, "once") == "once"


def test_a_grace_under_the_minimum_is_the_minimum() -> None:
    # every 1m: period/2 = 30 s, clamped up to 120 s
    job = make_job("every 1m", next_run_at=T0 - 120 * S, catch_up="skip")
    assert claim_at(job, T0).won
    job = make_job("every 1m", next_run_at=T0 - 121 * S, catch_up="skip")
    assert_lost(claim_at(job, T0), ClaimReason.MISSED)


def test_a_tick_past_grace_with_skip_writes_missed_and_moves_past_now() -> None:
    job = make_job("every 10m", next_run_at=T0 - 25 * M, catch_up="skip", name="s")
    outcome = sweep_at(job, T0)
    assert_lost(outcome, ClaimReason.MISSED)
    assert outcome.scheduled_at == to_iso(T0 - 25 * M)  # the slot missed, as its ledger row
    assert job["last_status"] == "missed"
    assert job["next_run_at"] == to_iso(T0 + 5 * M)
    assert job["fire_claim"] is None and job["repeat"]["completed"] == 0
    assert outcome.events == [
        LedgerEvent(
            "abcdef012345",
            "missed",
            to_iso(T0 - 25 * M),
            "1500s late, beyond grace; catch_up=skip",
            "s",
        )
    ]


def test_grace_is_computed_in_the_jobs_own_zone_across_dst() -> None:
    # Every 3 h in New York on the spring-forward of 2026-03-08: after the 21:00 EST slot
    # (02:00Z) come 00:00 EST (05:00Z) and 03:00 EDT (07:00Z) - a 2 h period there, grace
    # 3600 s; in the configured zone (UTC) the period is 3 h and the grace 5400 s.
    due = datetime(2026, 3, 8, 2, 0, tzinfo=UTC)
    job = make_job("0 */3 * * *", next_run_at=due, tz="America/New_York", catch_up="skip")
    assert_lost(claim_at(job, due + 4000 * S), ClaimReason.MISSED)
    job = make_job("0 */3 * * *", next_run_at=due, tz="America/New_York", catch_up="skip")
    outcome = sweep_at(job, due + 4000 * S)
    assert_lost(outcome, ClaimReason.MISSED)
    assert job["next_run_at"] == "2026-03-08T05:00:00+00:00"
    job = make_job("0 */3 * * *", next_run_at=due, tz="America/New_York", catch_up="skip")
    assert claim_at(job, due + 3600 * S).won


# -- §3 the tick: overlap, the crashed final run --------------------------------------------------


def test_a_tick_finding_a_live_claim_skips_the_slot_and_moves_past_it() -> None:
    job = held(make_job("every 10m", next_run_at=T0 - 15 * M, name="o"), T0 - M)
    outcome = sweep_at(job, T0)
    assert_lost(outcome, ClaimReason.SKIPPED)
    assert outcome.scheduled_at == to_iso(T0 - 15 * M)
    assert outcome.events == [
        LedgerEvent(
            "abcdef012345",
            "skipped",
            to_iso(T0 - 15 * M),
            "previous run still running (overlap)",
            "o",
        )
    ]
    assert job["last_status"] == "skipped"
    assert job["next_run_at"] == to_iso(T0 + 5 * M)
    assert job["fire_claim"]["at"] == to_iso(T0 - M)  # the running copy keeps its claim


def test_a_tick_skipping_a_one_shot_leaves_it_no_next_run() -> None:
    job = held(once_job(T0 - M), T0 - M)
    before = copy.deepcopy(job)
    assert_lost(sweep_at(job, T0), ClaimReason.SKIPPED)
    # the stored document changes in exactly these fields (the running copy keeps its claim)
    assert job == {**before, "last_status": "skipped", "next_run_at": None}


def test_a_spent_job_whose_final_run_crashed_completes_once_its_claim_expires() -> None:
    job = held(
        make_job("every 1m", next_run_at=None, repeat={"times": 1, "completed": 1}), T0 - TTL * S
    )
    outcome = sweep_at(job, T0)
    assert_lost(outcome, ClaimReason.EXPIRED_FINAL)
    assert job["state"] == "completed"
    assert job["last_status"] == "interrupted"
    assert job["fire_claim"] is None
    # what ``cronkit show`` prints as the job's "last error"
    assert job["last_error"] == "the final run's owner never reported back (claim expired)"


def test_a_spent_job_whose_final_run_is_live_is_left_alone() -> None:
    job = held(make_job("every 1m", next_run_at=None, repeat={"times": 1, "completed": 1}), T0 - M)
    before = copy.deepcopy(job)
    assert_lost(sweep_at(job, T0), ClaimReason.NO_NEXT_RUN)
    assert job == before


def test_a_job_with_no_next_run_and_no_claim_is_left_alone() -> None:
    job = make_job("every 1m", next_run_at=None, repeat={"times": 1, "completed": 1})
    before = copy.deepcopy(job)
    assert_lost(sweep_at(job, T0), ClaimReason.NO_NEXT_RUN)
    # not spent: a stale claim alone does not complete a job
    job2 = held(make_job("every 1m", next_run_at=None), T0 - H)
    before2 = copy.deepcopy(job2)
    assert_lost(sweep_at(job2, T0), ClaimReason.NO_NEXT_RUN)
    assert job == before and job2 == before2


@pytest.mark.parametrize(
    "fields", [{"enabled": False}, {"state": "paused"}, {"state": "completed"}, {"state": "error"}]
)
def test_a_tick_never_touches_a_job_that_is_not_scheduled(fields: dict[str, Any]) -> None:
    job = make_job("every 1m", next_run_at=T0 - H, **fields)
    before = copy.deepcopy(job)
    assert_lost(sweep_at(job, T0), ClaimReason.NOT_SCHEDULED)
    assert job == before


def test_a_tick_leaves_a_job_not_yet_due() -> None:
    job = make_job("every 1m", next_run_at=T0 + S)
    before = copy.deepcopy(job)
    assert_lost(sweep_at(job, T0), ClaimReason.NOT_DUE)
    assert job == before


def test_a_tick_claims_a_due_job_for_its_slot() -> None:
    job = make_job("every 10m", next_run_at=T0 - 5 * M)
    outcome = sweep_at(job, T0)
    assert outcome.won and outcome.code is ClaimReason.CLAIMED
    assert outcome.scheduled_at == to_iso(T0 - 5 * M)
    assert job["fire_claim"]["scheduled_at"] == to_iso(T0 - 5 * M)
    assert job["fire_claim"]["by"] == OWNER
    assert job["next_run_at"] == to_iso(T0 + 5 * M)
    assert job["repeat"]["completed"] == 1


# -- §3 mark_job_run: fenced by token ------------------------------------------------------------


def test_a_result_applies_only_with_the_live_token() -> None:
    job = make_job("every 1m")
    token = claim_at(job, T0).token or ""
    before = copy.deepcopy(job)
    assert claim.apply_run_result(job, "f" * 32, now=T0 + S, status="ok", error=None) is False
    assert job == before
    assert claim.apply_run_result(job, token, now=T0 + S, status="ok", error=None) is True
    assert job["fire_claim"] is None
    assert job["last_run_at"] == to_iso(T0 + S)
    assert job["last_status"] == "ok" and job["last_error"] is None
    assert job["failure_streak"] == 0
    # the claim is gone: the same token cannot apply twice
    assert claim.apply_run_result(job, token, now=T0 + 2 * S, status="error", error="x") is False
    assert job["last_status"] == "ok"


def test_a_result_on_a_job_without_claim_is_refused() -> None:
    assert (
        claim.apply_run_result(make_job("every 1m"), "", now=T0, status="ok", error=None) is False
    )


def test_failures_count_the_streak_and_keep_their_error() -> None:
    job = make_job("every 1m", failure_streak=None)
    token = claim_at(job, T0).token or ""
    claim.apply_run_result(job, token, now=T0, status="error", error="boom")
    assert (job["last_status"], job["last_error"], job["failure_streak"]) == ("error", "boom", 1)
    token = claim_at(job, T0 + M).token or ""
    claim.apply_run_result(job, token, now=T0 + M, status="timeout", error=None)
    assert (job["last_status"], job["last_error"], job["failure_streak"]) == (
        "timeout",
        "timeout",
        2,
    )
    token = claim_at(job, T0 + 2 * M).token or ""
    claim.apply_run_result(job, token, now=T0 + 2 * M, status="ok", error="ignored")
    assert (job["last_error"], job["failure_streak"]) == (None, 0)


def test_a_refresh_redates_only_the_live_claim() -> None:
    job = make_job("every 1m")
    token = claim_at(job, T0).token or ""
    assert claim.refresh(job, "f" * 32, now=T0 + M) is False
    assert job["fire_claim"]["at"] == to_iso(T0)
    assert claim.refresh(job, token, now=T0 + M) is True
    assert job["fire_claim"]["at"] == to_iso(T0 + M)
    assert claim.refresh(make_job("every 1m"), token, now=T0) is False


# -- §3 what a store indexes ---------------------------------------------------------------------


def test_wake_time_is_next_run_or_the_expiry_of_a_final_claim() -> None:
    assert claim.wake_time(make_job("every 1m", next_run_at=T0), TTL) == T0
    final = held(make_job("every 1m", next_run_at=None, repeat={"times": 1, "completed": 1}), T0)
    assert claim.wake_time(final, TTL) == T0 + TTL * S
    assert claim.wake_time(make_job("every 1m", next_run_at=None), TTL) is None
    undated = make_job("every 1m", next_run_at=None, fire_claim={"token": "x"})
    assert claim.wake_time(undated, TTL) is None
    for fields in ({"enabled": False}, {"state": "paused"}, {"state": "completed"}):
        assert claim.wake_time(make_job("every 1m", next_run_at=T0, **fields), TTL) is None


def test_is_spent_counts_completed_against_times() -> None:
    assert claim.is_spent({"repeat": {"times": 2, "completed": 2}})
    assert claim.is_spent({"repeat": {"times": 2, "completed": 3}})
    assert not claim.is_spent({"repeat": {"times": 2, "completed": 1}})
    assert not claim.is_spent({"repeat": {"times": None, "completed": 9}})
    assert not claim.is_spent({"repeat": {"times": 1}})
    assert claim.is_spent({"repeat": {"times": 0}})
    assert not claim.is_spent({})


def test_is_active_means_enabled_and_scheduled() -> None:
    assert claim.is_active({"state": "scheduled"})
    assert claim.is_active({"state": "scheduled", "enabled": True})
    assert not claim.is_active({"state": "scheduled", "enabled": False})
    assert not claim.is_active({"state": "paused", "enabled": True})
    assert not claim.is_active({"enabled": True})


def test_timestamps_without_offset_are_utc() -> None:
    assert claim.parse_ts("2026-06-01T10:00:00") == T0
    assert claim.parse_ts("2026-06-01T12:00:00+02:00") == T0
    assert claim.parse_ts("") is None and claim.parse_ts(None) is None


def test_a_schedule_that_produces_no_further_slot_stops_its_job_visibly() -> None:
    job = make_job({"kind": "cron", "expr": "0 0 31 2 *", "display": "never"}, next_run_at=T0 - M)
    outcome = claim_at(job, T0)
    assert outcome.won  # the due slot fires; the job then stops, the tick does not
    assert job["state"] == "error" and job["next_run_at"] is None
    assert job["last_status"] == "error"
    assert job["last_error"].startswith("the schedule produces no further slot: ")


# -- §13 retries: the claim is held through the backoff ----------------------------------------


def _running(next_run_at: datetime = T0 + H) -> tuple[Job, str]:
    job = make_job("every 1h", next_run_at=T0)
    token = claim_at(job, T0).token or ""
    job["next_run_at"] = to_iso(next_run_at)
    return job, token


def test_a_retry_gets_a_fresh_token_and_fences_out_the_attempt_before() -> None:
    job, token = _running()
    verdict, new = claim.retry_claim(job, token, now=T0 + M, start_at=T0 + 2 * M, attempt=2)
    assert verdict is RetryClaim.GRANTED
    assert new is not None and new != token and re.fullmatch(r"[0-9a-f]{32}", new)
    assert job["fire_claim"] == {
        "token": new,
        "at": to_iso(T0 + M),
        "by": OWNER,
        "scheduled_at": to_iso(T0),
        "attempt": 2,
        "retry_at": to_iso(T0 + 2 * M),
    }
    assert claim.claim_is_live(job, T0 + M, TTL)
    assert claim.apply_run_result(job, token, now=T0 + M, status="ok", error=None) is False
    assert claim.refresh(job, token, now=T0 + M) is False
    assert claim.may_start_retry(job, token, now=T0 + 2 * M) is RetryClaim.LOST
    assert claim.may_start_retry(job, new, now=T0 + 2 * M) is RetryClaim.GRANTED


def test_a_retry_is_refused_without_the_live_claim() -> None:
    job, token = _running()
    before = copy.deepcopy(job)
    assert claim.retry_claim(None, token, now=T0, start_at=T0, attempt=2) == (RetryClaim.LOST, None)
    assert claim.retry_claim(job, "f" * 32, now=T0, start_at=T0, attempt=2) == (
        RetryClaim.LOST,
        None,
    )
    assert claim.may_start_retry(None, token, now=T0) is RetryClaim.LOST
    unclaimed = make_job("every 1h")
    assert claim.retry_claim(unclaimed, token, now=T0, start_at=T0, attempt=2)[0] is (
        RetryClaim.LOST
    )
    assert claim.may_start_retry(unclaimed, token, now=T0) is RetryClaim.LOST
    assert job == before


@pytest.mark.parametrize("fields", [{"enabled": False}, {"state": "paused"}])
def test_a_retry_of_a_paused_job_is_refused(fields: dict[str, Any]) -> None:
    job, token = _running()
    job.update(fields)
    before = copy.deepcopy(job)
    assert claim.retry_claim(job, token, now=T0, start_at=T0 + M, attempt=2) == (
        RetryClaim.PAUSED,
        None,
    )
    assert claim.may_start_retry(job, token, now=T0 + M) is RetryClaim.PAUSED
    assert job == before


def test_a_retry_that_would_begin_at_or_after_the_next_slot_is_not_run() -> None:
    job, token = _running(next_run_at=T0 + H)
    before = copy.deepcopy(job)
    assert claim.retry_claim(job, token, now=T0, start_at=T0 + H, attempt=2) == (
        RetryClaim.PAST_NEXT_SLOT,
        None,
    )
    assert job == before
    verdict, new = claim.retry_claim(job, token, now=T0, start_at=T0 + H - S, attempt=2)
    assert verdict is RetryClaim.GRANTED and new is not None
    assert claim.may_start_retry(job, new, now=T0 + H - S) is RetryClaim.GRANTED
    assert claim.may_start_retry(job, new, now=T0 + H) is RetryClaim.PAST_NEXT_SLOT


def test_a_retry_of_a_spent_job_has_no_next_slot_to_miss() -> None:
    job = make_job("every 1h", next_run_at=T0, repeat={"times": 1, "completed": 0})
    token = claim_at(job, T0).token or ""
    assert job["next_run_at"] is None
    verdict, new = claim.retry_claim(job, token, now=T0, start_at=T0 + 48 * H, attempt=2)
    assert verdict is RetryClaim.GRANTED
    assert claim.may_start_retry(job, new or "", now=T0 + 48 * H) is RetryClaim.GRANTED
