"""The audit against the ticker (SPEC §13): whatever happens, every owed slot has exactly one
outcome — and a ledger row dropped or duplicated afterwards is always caught.

Generated: job sets (cron across DST in Berlin and New York, intervals, one-shots, both
catch-up policies), pauses, resumes, edits (also while the ticker is down), removals,
ticker stalls (clock jumps of up to 10 h), and crashes between claim and run (a claim that
is never marked). Everything runs through ``tick(now=…)`` and the job API with an
explicit ``now``. Then two planted bugs in the claim rules, which the audit must report.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from cron import audit, claim, executions, jobs, scheduler
from cron.errors import JobNotFoundError, JobValueError, ScheduleError
from tests.properties._home import fresh_home

ACTION = {"kind": "python", "target": "tests.properties._actions:noop"}

# Nights with a DST change in the zones used (UTC instants a little before it).
BASES = [
    (datetime(2025, 3, 29, 22, 0, tzinfo=UTC), "Europe/Berlin"),  # spring forward
    (datetime(2025, 10, 25, 22, 0, tzinfo=UTC), "Europe/Berlin"),  # fall back
    (datetime(2025, 3, 9, 4, 0, tzinfo=UTC), "America/New_York"),  # spring forward
    (datetime(2025, 11, 2, 3, 0, tzinfo=UTC), "America/New_York"),  # fall back
]
RECURRING = [
    "*/15 * * * *",
    "30 2 * * *",
    "0 * * * *",
    "*/20 1-3 * * *",
    "every 7m",
    "every 1h",
    "every 25m",
    "every 2m",
]


@dataclass(frozen=True)
class Spec:
    schedule: str  # recurring text, or "once+<minutes>"
    catch_up: str
    zoned: bool


spec_st = st.builds(
    Spec,
    st.one_of(st.sampled_from(RECURRING), st.integers(3, 240).map(lambda m: f"once+{m}")),
    st.sampled_from(["once", "skip"]),
    st.booleans(),
)

advance_st = st.tuples(st.just("advance"), st.integers(1, 8), st.integers(1, 15))
step_st = st.one_of(
    advance_st,
    advance_st,
    advance_st,
    st.tuples(st.just("stall"), st.integers(30, 600)),
    st.tuples(st.just("pause"), st.integers(0, 5)),
    st.tuples(st.just("resume"), st.integers(0, 5)),
    st.tuples(st.just("edit"), st.integers(0, 5), st.sampled_from(RECURRING)),
    st.tuples(
        st.just("edit_while_down"),
        st.integers(0, 5),
        st.sampled_from(RECURRING),
        st.integers(30, 300),
    ),
    st.tuples(st.just("remove"), st.integers(0, 5)),
    st.tuples(st.just("crash"), st.integers(0, 5), st.integers(30, 400)),
    st.tuples(st.just("create"), spec_st),
)


def _create(spec: Spec, zone: str, now: datetime) -> str | None:
    text = spec.schedule
    if text.startswith("once+"):
        text = (now + timedelta(minutes=int(text[5:]))).isoformat()
    try:
        job = jobs.create_job(
            text, ACTION, tz=zone if spec.zoned else None, catch_up=spec.catch_up, now=now
        )
    except ScheduleError:
        return None
    return str(job["id"])


def _run(base: datetime, zone: str, specs: list[Spec], steps: list[tuple[Any, ...]]) -> datetime:
    t = base
    ids = [i for i in (_create(s, zone, t) for s in specs) if i is not None]

    def pick(i: int) -> str | None:
        return ids[i % len(ids)] if ids else None

    for step in steps:
        kind = step[0]
        job_id = pick(step[1]) if kind not in ("advance", "stall", "create") else None
        with contextlib.suppress(JobNotFoundError, JobValueError, ScheduleError):
            if kind == "advance":
                # A live ticker: a tick every step[2] minutes, step[1] times.
                for _ in range(step[1] - 1):
                    t += timedelta(minutes=step[2])
                    scheduler.tick(now=t)
                t += timedelta(minutes=step[2])
            elif kind == "stall":
                t += timedelta(minutes=step[1])  # the ticker was down: one tick after
            elif kind == "pause" and job_id:
                jobs.pause_job(job_id, now=t)
            elif kind == "resume" and job_id:
                jobs.resume_job(job_id, now=t)
            elif kind == "edit" and job_id:
                jobs.update_job(job_id, schedule=step[2], now=t)
            elif kind == "edit_while_down" and job_id:
                t += timedelta(minutes=step[3])
                jobs.update_job(job_id, schedule=step[2], now=t)
            elif kind == "remove" and job_id:
                jobs.remove_job(job_id, now=t)
            elif kind == "crash" and job_id:
                # Claimed at its slot, then the process died: never run, never marked.
                nxt = claim.parse_ts((jobs.get_job(job_id) or {}).get("next_run_at"))
                if nxt is not None:
                    t = max(t, nxt)
                    jobs.claim_job_for_fire(job_id, now=t)
                    t += timedelta(seconds=step[2])  # its claim may still be live then
            elif kind == "create":
                new = _create(step[1], zone, t)
                if new is not None:
                    ids.append(new)
        scheduler.tick(now=t)
    return t


def _problems(report: audit.AuditReport) -> list[tuple[str, str, str]]:
    return [(p.job_id, p.slot, p.reason) for p in report.lost + report.double]


@given(
    where=st.sampled_from(BASES),
    specs=st.lists(spec_st, min_size=2, max_size=5),
    steps=st.lists(step_st, min_size=6, max_size=30),
    tamper=st.data(),
)
def test_every_owed_slot_has_exactly_one_outcome_and_tampering_is_caught(
    where: tuple[datetime, str],
    specs: list[Spec],
    steps: list[tuple[Any, ...]],
    tamper: st.DataObject,
) -> None:
    base, zone = where
    with fresh_home():
        end = _run(base, zone, specs, steps)
        report = audit.verify(since=base, until=end, now=end)
        note(f"totals: {report.totals()}")
        assert _problems(report) == []

        # Rows the audit used as a slot's own outcome: drop one, or duplicate one.
        rows = [
            r
            for r in executions.list_executions(limit=None)
            if r["scheduled_at"] and base.isoformat() <= r["scheduled_at"] <= end.isoformat()
        ]
        owed_rows = [r for r in rows if any(j.job_id == r["job_id"] for j in report.jobs)]
        if not owed_rows:
            return
        victim = tamper.draw(st.sampled_from(owed_rows), label="victim")
        drop = tamper.draw(st.booleans(), label="drop")
        if drop:
            executions.write_ledger(
                lambda c: c.execute("DELETE FROM executions WHERE id = ?", (victim["id"],))
            )
        else:
            executions.write_ledger(
                lambda c: c.execute(
                    "INSERT INTO executions (id, job_id, scheduled_at, claimed_at, started_at, "
                    "finished_at, status, source) SELECT id || 'dup', job_id, scheduled_at, "
                    "claimed_at, started_at, finished_at, status, source FROM executions "
                    "WHERE id = ?",
                    (victim["id"],),
                )
            )
        tampered = audit.verify(since=base, until=end, now=end)
        problems = tampered.lost if drop else tampered.double
        assert (victim["job_id"], victim["scheduled_at"]) in {(p.job_id, p.slot) for p in problems}
        assert tampered.exit_code == 1


# -- planted bugs: the audit must catch a broken claim rule ------------------------------------


T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)


def _every_minute(n: int, **kw: Any) -> tuple[str, datetime]:
    job = jobs.create_job("every 1m", ACTION, now=T0, **kw)
    t = T0
    for _ in range(n):
        t += timedelta(minutes=1)
        scheduler.tick(now=t)
    return str(job["id"]), t


def test_a_claim_that_does_not_advance_is_reported_double(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with fresh_home():
        real = claim._advance

        def stuck(job: dict[str, Any], *, anchor: datetime, now: datetime) -> None:
            if (
                job.get("fire_claim")
                and job["fire_claim"]["scheduled_at"] == (T0 + timedelta(minutes=2)).isoformat()
            ):
                return  # the bug: this fire leaves next_run_at where it was
            real(job, anchor=anchor, now=now)

        monkeypatch.setattr(claim, "_advance", stuck)
        job_id, end = _every_minute(5)
        report = audit.verify(since=T0, until=end, now=end)
        assert [(p.job_id, p.slot) for p in report.double] == [
            (job_id, (T0 + timedelta(minutes=2)).isoformat())
        ]
        assert report.exit_code == 1


def test_a_skip_that_writes_no_missed_row_is_reported_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with fresh_home():
        real = claim.sweep_due

        def forgetful(job: dict[str, Any], **kw: Any) -> claim.ClaimOutcome:
            outcome = real(job, **kw)
            if outcome.code is claim.ClaimReason.MISSED:
                outcome.events = []  # the bug: the missed slot gets no ledger row
            return outcome

        monkeypatch.setattr(claim, "sweep_due", forgetful)
        job = jobs.create_job("every 1m", ACTION, catch_up="skip", now=T0)
        end = T0 + timedelta(hours=1)
        scheduler.tick(now=end)
        report = audit.verify(since=T0, until=end, now=end)
        assert [p.job_id for p in report.lost] == [job["id"]] * 60
        assert {p.reason for p in report.lost} == {"no outcome"}


def test_a_burst_of_catch_up_fires_would_still_be_one_outcome_per_slot_but_a_lost_advance_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The claim moving next_run_at past a slot it never recorded (here: a skip of two
    # slots per fire) leaves those slots with no outcome at all.
    with fresh_home():
        real = claim._advance

        def leap(job: dict[str, Any], *, anchor: datetime, now: datetime) -> None:
            real(job, anchor=anchor, now=now + timedelta(minutes=1))

        monkeypatch.setattr(claim, "_advance", leap)
        job_id, end = _every_minute(6)
        report = audit.verify(since=T0, until=end, now=end)
        assert report.lost and {p.job_id for p in report.lost} == {job_id}
        assert report.exit_code == 1
