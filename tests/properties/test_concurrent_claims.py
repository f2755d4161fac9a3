"""Property 1: concurrent claims are at-most-once and never lose an update.

Hypothesis draws 2-8 contenders (threads, or real ``spawn`` processes in
about a third of the examples), a handful of jobs (recurring and one-shot,
some paused, some spent, some holding a live, stale or future-dated claim),
the catch-up default, the clock and the ``scheduled_at`` each contender
asks for. Every contender claims every job through
``cron.jobs.claim_job_for_fire`` against one real store (``jobs.json``, or
the SQLite database when ``CRONKIT_STORE=sqlite``); each
winner "runs" (records ``(job, slot, token)``) and calls ``mark_job_run``;
each contender also creates one job of its own, interleaved with its claims.

A tiny oracle written from SPEC §3 (not from ``cron.claim``) predicts, per
job, the slot that must be won by exactly one contender, or that nobody
wins. Invariants: winners per (job, slot) match the oracle; runs == wins ==
ledger ``claimed`` rows; ``repeat.completed`` == initial + runs; a job
nobody won is byte-for-byte unchanged; every contender-created job exists
(no lost update); what is on disk agrees with ``scan()``. On the JSON store,
``jobs.json`` also parses whenever a contender looks and at the end.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import threading
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from tests.properties._home import fresh_home as _fresh_home

CLAIM_TTL = 300.0
ONE_SHOT_GRACE = 120.0
BASE = datetime(2031, 1, 6, tzinfo=UTC)  # a Monday, 00:00 UTC

# (schedule text, kind, period seconds or None, grace seconds) — grace written
# out by hand from SPEC §2: clamp(period / 2, 120, 7200); one-shots use 120 s.
KINDS: list[tuple[str, str, int | None, float]] = [
    ("every 90s", "interval", 90, 120.0),
    ("every 10m", "interval", 600, 300.0),
    ("every 4h", "interval", 14400, 7200.0),
    ("*/5 * * * *", "cron", 300, 150.0),
    ("0 * * * *", "cron", 3600, 1800.0),
    ("in 10m", "once", None, ONE_SHOT_GRACE),
]

_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
MAX_EXAMPLES = {"ci": 25, "dev": 50}.get(_PROFILE, max(25, settings().max_examples // 4))


@dataclass(frozen=True)
class JobSpec:
    kind: int  # index into KINDS
    paused: bool = False
    claim: str = "none"  # none | live | stale | future
    claim_age: int = 0  # seconds before T (negative for "future")
    times: int | None = None  # repeat.times for recurring jobs
    done: int = 0  # repeat.completed at seed time (== times -> completed job)
    catch_up: str | None = None
    sa_mode: str = "none"  # none | slot | before | after_now | later


@st.composite
def job_specs(draw: st.DrawFn) -> JobSpec:
    kind = draw(st.integers(0, len(KINDS) - 1))
    once = KINDS[kind][1] == "once"
    claim = draw(st.sampled_from(["none", "none", "live", "stale", "future"]))
    age = {
        "none": st.just(0),
        "live": st.integers(0, int(CLAIM_TTL) - 1),
        "stale": st.integers(int(CLAIM_TTL), 5000),
        "future": st.integers(-5000, -1),
    }[claim]
    times = 1 if once else draw(st.sampled_from([None, 1, 2, 3]))
    done = 0 if times is None else draw(st.integers(0, times))
    return JobSpec(
        kind=kind,
        paused=draw(st.integers(0, 5)) == 5,
        claim=claim,
        claim_age=draw(age),
        times=times,
        done=done,
        catch_up=draw(st.sampled_from([None, None, "once", "skip"])),
        sa_mode=draw(st.sampled_from(["none", "slot", "later", "none", "before", "after_now"])),
    )


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def _ts(text: str | None) -> datetime | None:
    if text is None:
        return None
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def fresh_home(catch_up_default: str = "once") -> contextlib.AbstractContextManager[Path]:
    """A private CRONKIT_HOME for one Hypothesis example (fixtures are per test, not example)."""
    return _fresh_home(
        f"cron:\n  timezone: UTC\n  catch_up: {catch_up_default}\n  claim_ttl: {CLAIM_TTL:g}\n",
        prefix="cronkit-p1-",
    )


# -- the oracle (SPEC §3, written independently of cron.claim) -------------------


def expected_slot(
    job: dict[str, Any], spec: JobSpec, now: datetime, asked: datetime | None, catch_up_default: str
) -> datetime | None:
    """The slot exactly one contender must win, or None when the SPEC says nobody wins."""
    if job["state"] == "completed":
        return None
    if not job["enabled"] or job["state"] == "paused":
        return None
    claim = job.get("fire_claim")
    if claim:
        age = (now - _ts(claim["at"])).total_seconds()  # type: ignore[operator]
        if 0 <= age < CLAIM_TTL:
            return None
    due = _ts(job.get("next_run_at"))
    if due is None or due > now:
        return None
    if asked is not None and (asked < due or asked > now):
        return None
    slot = asked if asked is not None else due
    late = (now - slot).total_seconds()
    _text, kind, _period, grace = KINDS[spec.kind]
    if kind == "once":
        return None if late > ONE_SHOT_GRACE else slot
    policy = spec.catch_up or catch_up_default
    if late > grace and policy == "skip":
        return None
    return slot


def asked_slot(job: dict[str, Any], spec: JobSpec, now: datetime) -> datetime | None:
    """The ``scheduled_at`` every contender passes for this job."""
    due = _ts(job.get("next_run_at"))
    anchor = due if due is not None else now
    period = KINDS[spec.kind][2]
    if spec.sa_mode == "none":
        return None
    if spec.sa_mode == "slot":
        return anchor
    if spec.sa_mode == "before":
        return anchor - timedelta(seconds=1)
    if spec.sa_mode == "after_now":
        return now + timedelta(seconds=1)
    # "later": the latest slot of the series not after now (passes over missed slots)
    if period is None or due is None or due > now:
        return anchor
    k = int((now - due).total_seconds() // period)
    return due + timedelta(seconds=k * period)


# -- seeding ---------------------------------------------------------------------


def seed(specs: list[JobSpec], t0: datetime, now: datetime) -> list[dict[str, Any]]:
    from cron import jobs
    from tests.support.stores import by_id as stored_by_id
    from tests.support.stores import edit_job

    ids: list[str] = []
    for spec in specs:
        text = KINDS[spec.kind][0]
        repeat = None if KINDS[spec.kind][1] == "once" else spec.times
        job = jobs.create_job(
            text, "true", name=f"seed-{len(ids)}", repeat=repeat, catch_up=spec.catch_up, now=t0
        )
        if spec.paused:
            jobs.pause_job(job["id"], reason="drawn", now=t0)
        ids.append(job["id"])
    for job_id, spec in zip(ids, specs, strict=True):

        def apply(job: dict[str, Any], spec: JobSpec = spec, job_id: str = job_id) -> None:
            job["repeat"]["completed"] = spec.done
            if spec.times is not None and spec.done >= spec.times:
                # Spent and marked: what SPEC §3 says such a job looks like.
                job["state"] = "completed"
                job["next_run_at"] = None
                job["last_status"] = "ok"
            elif spec.claim != "none":
                job["fire_claim"] = {
                    "token": f"seeded{job_id}",
                    "at": _iso(now - timedelta(seconds=spec.claim_age)),
                    "by": "elsewhere:1:1",
                    "scheduled_at": _iso(t0),
                }

        edit_job(job_id, apply)
    by_id = stored_by_id()
    return [by_id[i] for i in ids]


# -- contenders --------------------------------------------------------------------


def _contend(
    index: int, plan: list[tuple[str, str | None]], now_iso: str, wait: Any, results: dict[str, Any]
) -> None:
    """One contender: claim every planned job (rotated order), run the winners, create a job."""
    from cron import jobs, paths
    from cron.store import JsonJobStore, get_store

    now = datetime.fromisoformat(now_iso)
    on_json = isinstance(get_store(), JsonJobStore)
    order = plan[index % len(plan) :] + plan[: index % len(plan)]
    create_at = index % (len(order) + 1)
    wins: list[list[Any]] = []
    marks: list[bool] = []
    parse_errors: list[str] = []
    created: str | None = None

    def create() -> str:
        return str(jobs.create_job("every 1h", "true", name=f"c{index}", now=now)["id"])

    wait()
    for pos, (job_id, asked) in enumerate(order):
        if pos == create_at:
            created = create()
        token = jobs.claim_job_for_fire(job_id, scheduled_at=asked, now=now)
        if on_json:  # a reader of the file never sees half a write
            try:
                json.loads(paths.jobs_path().read_bytes())
            except ValueError as exc:
                parse_errors.append(repr(exc))
        if token is not None:
            wins.append([job_id, asked, token])  # "run" it
            marks.append(jobs.mark_job_run(job_id, token, success=True, now=now))
    if created is None:
        created = create()
    results.update(wins=wins, marks=marks, parse_errors=parse_errors, created=created)


def _process_main(
    home: str, index: int, plan: list[tuple[str, str | None]], now_iso: str, barrier: Any, out: str
) -> None:
    os.environ["CRONKIT_HOME"] = home
    os.environ["TZ"] = "UTC"
    results: dict[str, Any] = {}
    try:
        _contend(index, plan, now_iso, lambda: barrier.wait(60), results)
    except BaseException:
        results["error"] = traceback.format_exc()
    Path(out).write_text(json.dumps(results), encoding="utf-8")


def run_threads(n: int, plan: list[tuple[str, str | None]], now: datetime) -> list[dict[str, Any]]:
    barrier = threading.Barrier(n)
    results: list[dict[str, Any]] = [{} for _ in range(n)]

    def body(i: int) -> None:
        try:
            _contend(i, plan, now.isoformat(), lambda: barrier.wait(60), results[i])
        except BaseException:
            results[i]["error"] = traceback.format_exc()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a contender thread hung"
    return results


def run_processes(
    n: int, plan: list[tuple[str, str | None]], now: datetime, home: Path
) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n)
    outs = [home / f"contender-{i}.json" for i in range(n)]
    procs = [
        ctx.Process(
            target=_process_main, args=(str(home), i, plan, now.isoformat(), barrier, str(outs[i]))
        )
        for i in range(n)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return [json.loads(o.read_text(encoding="utf-8")) for o in outs]


# -- the property --------------------------------------------------------------------


@settings(max_examples=MAX_EXAMPLES)
@given(
    n=st.integers(2, 8),
    mode=st.booleans().map(lambda p: "process" if p else "thread"),
    specs=st.lists(job_specs(), min_size=1, max_size=4),
    t0_offset=st.integers(0, 3599),
    advance=st.one_of(  # seconds from t0 (job creation) to the contenders' clock
        st.integers(600, 1000),  # most kinds due, the one-shot on time or just late
        st.sampled_from([0, 90, 119, 120, 121, 600, 720, 3600, 5400, 14400, 21600]),
        st.integers(0, 8 * 3600),
    ),
    catch_up_default=st.sampled_from(["once", "once", "skip"]),
)
# Boundaries: a claim exactly CLAIM_TTL old is stale; exactly 0 s old is live;
# a one-shot exactly 120 s late still fires, 121 s late does not.
@example(
    n=2,
    mode="thread",
    specs=[JobSpec(kind=0, claim="stale", claim_age=300)],
    t0_offset=0,
    advance=90,
    catch_up_default="once",
)
@example(
    n=2,
    mode="thread",
    specs=[JobSpec(kind=0, claim="live", claim_age=0)],
    t0_offset=0,
    advance=90,
    catch_up_default="once",
)
@example(
    n=3,
    mode="thread",
    specs=[JobSpec(kind=5, sa_mode="slot"), JobSpec(kind=5)],
    t0_offset=0,
    advance=720,
    catch_up_default="once",
)
@example(
    n=3, mode="thread", specs=[JobSpec(kind=5)], t0_offset=0, advance=721, catch_up_default="once"
)
@example(
    n=2,
    mode="process",
    specs=[JobSpec(kind=1, times=2, done=1, sa_mode="later")],
    t0_offset=17,
    advance=3600,
    catch_up_default="skip",
)
# Found once: the shrunk case of the dropped-lock break (two threads, one due job).
@example(
    n=2, mode="thread", specs=[JobSpec(kind=0)], t0_offset=0, advance=600, catch_up_default="once"
)
# Found once (in a run against a mid-edit tree): processes, future-dated claims.
@example(
    n=3,
    mode="process",
    specs=[
        JobSpec(kind=3, claim="future", claim_age=-863, times=2, sa_mode="slot", catch_up="once")
    ]
    * 2,
    t0_offset=0,
    advance=600,
    catch_up_default="once",
)
def test_concurrent_claims_are_at_most_once(
    n: int,
    mode: str,
    specs: list[JobSpec],
    t0_offset: int,
    advance: int,
    catch_up_default: str,
) -> None:
    t0 = BASE + timedelta(seconds=t0_offset)
    now = t0 + timedelta(seconds=advance)
    with fresh_home(catch_up_default) as home:
        seeded = seed(specs, t0, now)
        asked = [asked_slot(j, s, now) for j, s in zip(seeded, specs, strict=True)]
        expected = [
            expected_slot(j, s, now, a, catch_up_default)
            for j, s, a in zip(seeded, specs, asked, strict=True)
        ]
        plan = [
            (j["id"], None if a is None else _iso(a)) for j, a in zip(seeded, asked, strict=True)
        ]
        event(f"mode={mode}")
        event(f"jobs that must be won: {sum(s is not None for s in expected)}/{len(expected)}")
        if mode == "thread":
            results = run_threads(n, plan, now)
        else:
            results = run_processes(n, plan, now, home)

        errors = [r["error"] for r in results if "error" in r]
        assert not errors, errors[0]
        # Every violation is collected and asserted in ONE place: a race shows up as
        # different symptoms on different replays, and Hypothesis only shrinks a
        # failure it can reproduce at the same assertion.
        problems = check_outcome(home, n, now, seeded, specs, expected, results)
        assert not problems, "\n".join(problems)


def check_outcome(
    home: Path,
    n: int,
    now: datetime,
    seeded: list[dict[str, Any]],
    specs: list[JobSpec],
    expected: list[datetime | None],
    results: list[dict[str, Any]],
) -> list[str]:
    from cron import executions
    from tests.support.stores import by_id as stored_by_id
    from tests.support.stores import disk_jobs, is_json

    problems: list[str] = []
    parse_errors = [e for r in results for e in r["parse_errors"]]
    if parse_errors:
        problems.append(f"jobs.json did not parse mid-run: {parse_errors[:3]}")
    if is_json():
        raw = json.loads((home / "cron" / "jobs.json").read_bytes())  # parses at the end
        if raw.get("version") != 1:
            problems.append(f"version is {raw.get('version')!r}")
        final = {j["id"]: j for j in raw["jobs"]}
    else:
        final = {j["id"]: j for j in disk_jobs() or []}
    if final != stored_by_id():
        problems.append("the store's scan() disagrees with the file")

    # No lost update: every contender's own job survived everyone else's writes.
    created = [r["created"] for r in results]
    missing = [c for c in created if c not in final]
    if missing or len(set(created)) != n:
        problems.append(f"lost update: contender-created jobs {missing} vanished")
    elif sorted(final[c]["name"] for c in created) != sorted(f"c{i}" for i in range(n)):
        problems.append("lost update: a contender-created job has the wrong name")

    wins = [w for r in results for w in r["wins"]]
    marks = [m for r in results for m in r["marks"]]
    if not all(marks):
        problems.append(
            f"{marks.count(False)} winner(s)' mark_job_run refused: "
            "the claim was taken over by another contender"
        )
    if len({w[2] for w in wins}) != len(wins):
        problems.append("a claim token was handed out twice")

    for job, spec, slot in zip(seeded, specs, expected, strict=True):
        jid = job["id"]
        mine = [w for w in wins if w[0] == jid]
        want = 0 if slot is None else 1
        if len(mine) != want:
            problems.append(
                f"job {jid} ({KINDS[spec.kind][0]}, {spec}): {len(mine)} winners, "
                f"SPEC says {want} (expected slot {slot})"
            )
        after = final.get(jid)
        if after is None:
            problems.append(f"lost update: seeded job {jid} vanished")
            continue
        rows = [r for r in executions.list_executions(jid, limit=None) if r["status"] == "claimed"]
        if len(rows) != len(mine):
            problems.append(f"job {jid}: {len(rows)} ledger claim rows for {len(mine)} runs")
        if slot is None:
            if after != job:
                problems.append(f"a lost claim changed job {jid}")
            continue
        if after["repeat"]["completed"] != job["repeat"]["completed"] + len(mine):
            problems.append(
                f"job {jid}: repeat.completed {after['repeat']['completed']} != "
                f"{job['repeat']['completed']} + {len(mine)} runs"
            )
        if after["last_scheduled_at"] != _iso(slot):
            problems.append(f"job {jid}: fired slot {after['last_scheduled_at']} != {_iso(slot)}")
        if after["fire_claim"] is not None or after["last_status"] != "ok":
            problems.append(f"job {jid}: claim not released / result not recorded")
        times = after["repeat"]["times"]
        if times is not None and after["repeat"]["completed"] >= times:
            if after["next_run_at"] is not None or after["state"] != "completed":
                problems.append(
                    f"job {jid}: spent but next_run_at={after['next_run_at']} "
                    f"state={after['state']}"
                )
        else:
            nxt = _ts(after["next_run_at"])
            if nxt is None or nxt <= now:
                problems.append(
                    f"job {jid}: next_run_at {after['next_run_at']} not strictly after now {now}"
                )
    return problems
