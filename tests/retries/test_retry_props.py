"""Hypothesis: retries never overlap, never start at or after the next slot, and run exactly
as the timing rule says, for generated failure scripts, schedules and policies."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from cron import executions, jobs, scheduler
from cron.claim import parse_ts
from cron.retry import FakeClock, RetryPolicy, RetryTiming, RetryVerdict, plan_retry
from tests.properties._home import fresh_home
from tests.retries import _target

T0 = datetime.now(UTC).replace(microsecond=0)
SLOTS = 3


def _expected_attempts(
    script: list[bool], policy: RetryPolicy, period: float, seed: int
) -> list[int]:
    """The model: attempts per slot, replaying the timing rule with the same random draws."""
    rng = random.Random(seed)
    left = list(script)
    out = []
    for _ in range(SLOTS):
        attempt, at = 1, 0.0  # seconds since the slot
        while True:
            failed = left.pop(0) if left else False
            if not failed:
                break
            plan = plan_retry(
                status="error",
                attempt=attempt,
                policy=policy,
                now=T0 + timedelta(seconds=at),
                next_slot=T0 + timedelta(seconds=period),
                rng=rng,
            )
            if plan.verdict is not RetryVerdict.RETRY:
                break
            attempt += 1
            at += plan.delay
        out.append(attempt)
    return out


@settings(max_examples=25)
@given(
    script=st.lists(st.booleans(), max_size=14),
    period=st.integers(30, 900),
    retries=st.integers(0, 4),
    backoff=st.integers(1, 400),
    extra=st.integers(0, 2000),
    seed=st.integers(0, 2**16),
)
def test_attempts_never_overlap_nor_pass_the_next_slot(
    script: list[bool], period: int, retries: int, backoff: int, extra: int, seed: int
) -> None:
    policy = RetryPolicy(retries, float(backoff), float(backoff + extra))
    with fresh_home():
        clock = FakeClock(T0)
        previous = scheduler.set_retry_timing(RetryTiming(clock, random.Random(seed)))
        try:
            _target.reset(script)
            job = jobs.create_job(
                f"every {period}s",
                {"kind": "python", "target": _target.TARGET},
                retry={"max": retries, "backoff": backoff, "max_backoff": backoff + extra},
                now=T0 - timedelta(seconds=period),
            )
            for _ in range(SLOTS):
                current = jobs.get_job(job["id"])
                assert current is not None
                due = parse_ts(current["next_run_at"])
                assert due is not None
                clock.set(due)
                assert scheduler.tick(now=clock.now()) == 1
            rows = executions.list_executions(job["id"], limit=None, attempts=True)
        finally:
            scheduler.wait_for_running(25)
            scheduler.set_retry_timing(previous)

    records = _target.records
    assert _target.most_running == 1, "two attempts of one job ran at once"
    for rec in records:
        assert rec.next_slot is not None and rec.started < rec.next_slot, rec
    starts = [rec.started for rec in records]
    assert starts == sorted(starts)
    by_slot: dict[str, list[int]] = {}
    for rec in records:
        by_slot.setdefault(rec.slot, []).append(rec.attempt)
    assert all(a == list(range(1, len(a) + 1)) for a in by_slot.values()), by_slot
    assert [len(by_slot[s]) for s in sorted(by_slot)] == _expected_attempts(
        script, policy, period, seed
    )
    # The ledger agrees: one final row per attempt, every attempt of a slot at that slot.
    ledger = sorted((r["scheduled_at"], r["attempt"]) for r in rows)
    assert ledger == sorted((rec.slot, rec.attempt) for rec in records)
    assert all(r["status"] in ("ok", "error") for r in rows)
