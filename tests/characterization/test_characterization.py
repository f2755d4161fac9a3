"""Phase 0: pin the built-in ticker's behaviour against committed golden files.

Every scenario of ``scenarios.SCENARIOS`` runs under frozen time (freezegun,
plus an explicit ``now=`` on every call). After each step the normalised
``jobs.json`` (on another store: its jobs as ``scan()`` lists them) and ledger
are recorded together with the step's return value; the scenario's SPEC checks
run first, then the whole record is compared with ``golden/<scenario>.json``
(see ``conftest.py`` for regenerating). Every store must match the same goldens.
The frozen clock is the store's clock too (:func:`frozen`): freezegun moves this
process's clock, not a database server's, and a run finishing without an explicit
``now`` is stamped by the store's clock (SPEC §11).

Normalisation makes the record independent of the run: job ids become
``job-1``, ``job-2``... (in creation order), claim tokens ``token-1``... (in
order of appearance; tokens taken by an explicit ``claim`` step keep the
step's name, e.g. ``token-a``), ledger rows that are not runs
(``missed``/``skipped``) get ``event-1``..., the owner ``host:pid:start`` of
this process becomes ``owner`` and of any other process ``owner-other``,
``updated_at`` is dropped, and output paths are made relative to the home.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from cron import executions, jobs, paths, procinfo, scheduler
from cron.store import JsonJobStore, get_store
from tests.characterization.actions import OK
from tests.characterization.conftest import Golden
from tests.characterization.scenarios import SCENARIOS, Record, Scenario, Step, utc
from tests.conftest import write_config

REPO = Path(__file__).resolve().parents[2]

_TOKEN_RE = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
_ID_RE = re.compile(r"(?<![0-9a-f])[0-9a-f]{12}(?![0-9a-f])")
_CHILD_CLAIM = (
    "import json, sys\n"
    "from datetime import datetime\n"
    "from cron import jobs\n"
    "won = jobs.claim_due_jobs(datetime.fromisoformat(sys.argv[1]))\n"
    "print(json.dumps([token for _job, token in won]))\n"
)


class Normaliser:
    """Maps run-specific values (ids, tokens, owners, the home path) to stable names."""

    def __init__(self, home: Path) -> None:
        self.home = str(home)
        self.me = procinfo.owner_id()
        self.owner_re = re.compile(re.escape(procinfo.hostname()) + r":\d+:\d+")
        self.ids: dict[str, str] = {}
        self.tokens: dict[str, str] = {}
        self.events: dict[str, str] = {}

    def job_id(self, real: str) -> str:
        return self.ids.setdefault(real, f"job-{len(self.ids) + 1}")

    def token(self, real: str) -> str:
        return self.tokens.setdefault(real, f"token-{len(self.tokens) + 1}")

    def text(self, s: str) -> str:
        if s.startswith(self.home + os.sep):
            s = s[len(self.home) + 1 :]
        s = self.owner_re.sub(lambda m: "owner" if m.group(0) == self.me else "owner-other", s)
        s = _TOKEN_RE.sub(lambda m: self.events.get(m.group(0)) or self.token(m.group(0)), s)
        return _ID_RE.sub(lambda m: self.job_id(m.group(0)), s)

    def value(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, list):
            return [self.value(x) for x in obj]
        if isinstance(obj, dict):
            return {k: self.value(v) for k, v in obj.items()}
        return obj

    def ledger(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        def key(row: dict[str, Any]) -> tuple[str, ...]:
            return tuple(
                str(row.get(k) or "")
                for k in ("scheduled_at", "claimed_at", "started_at", "finished_at", "status")
            ) + (self.text(row["job_id"]),)

        out = []
        for row in sorted(rows, key=key):
            if row["status"] in ("missed", "skipped") and row["id"] not in self.tokens:
                self.events.setdefault(row["id"], f"event-{len(self.events) + 1}")
            out.append(self.value(row))
        return out


@contextlib.contextmanager
def frozen(start: datetime) -> Iterator[Any]:
    """``freeze_time(start)``, with the store's :meth:`~cron.stores.JobStore.clock` reading
    that frozen clock (on a file store it does anyway; a database store's is its server's)."""
    store = get_store()
    with freeze_time(start) as clock, mock.patch.object(store, "clock", lambda: datetime.now(UTC)):
        yield clock


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _local(slot: str, zone: str | None) -> str:
    return _parse(slot).astimezone(ZoneInfo(zone or "UTC")).strftime("%Y-%m-%d %H:%M:%S %Z")


def read_store() -> list[dict[str, Any]]:
    """The stored jobs, in creation order: ``jobs.json`` as written on the JSON store
    (the goldens pin that file), the store's ``scan()`` on any other."""
    if not isinstance(get_store(), JsonJobStore):
        return [s.job for s in get_store().scan()]
    path = paths.jobs_path()
    if not path.exists():
        return []
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert set(doc) == {"version", "jobs", "updated_at"} and doc["version"] == 1
    return list(doc["jobs"])


class Recorder:
    """Runs one scenario's steps and records a normalised snapshot after each."""

    def __init__(self, home: Path, scenario: Scenario) -> None:
        self.home = home
        self.scenario = scenario
        self.norm = Normaliser(home)
        self.refs: dict[str, str] = {}
        self.claim_tokens: dict[str, str | None] = {}
        self.seen_rows: set[str] = set()
        self.records: list[Record] = []

    def _job(self, ref: str) -> str:
        return self.refs[ref]

    def now_for(self, st: Step) -> datetime:
        if st.at is not None:
            return st.at
        due = [
            _parse(j["next_run_at"])
            for j in read_store()
            if j.get("state") == "scheduled" and j.get("next_run_at")
        ]
        assert due, f"step {st.label!r}: no job has a next run"
        return min(due) + st.args["offset"]

    def perform(self, st: Step, now: datetime) -> Any:
        a = st.args
        if st.op == "create":
            job = jobs.create_job(a["schedule"], a["action"], now=now, **a["kw"])
            self.refs[a["ref"]] = job["id"]
            assert self.norm.job_id(job["id"]) == a["ref"], "refs must be job-1, job-2... in order"
            return self.norm.job_id(job["id"])
        if st.op in ("tick", "tick_next"):
            return scheduler.tick(now=now, sync=True)
        if st.op == "claim":
            token = jobs.claim_job_for_fire(self._job(a["ref"]), now=now, **a["kw"])
            self.claim_tokens[a["token"]] = token
            if token is not None:
                self.norm.tokens[token] = a["token"]
            return None if token is None else a["token"]
        if st.op == "mark":
            token = self.claim_tokens[a["token"]]
            assert token is not None, f"{a['token']} was never won"
            return jobs.mark_job_run(self._job(a["ref"]), token, success=a["success"], now=now)
        if st.op == "pause":
            return self.norm.value(jobs.pause_job(self._job(a["ref"]), now=now)["state"])
        if st.op == "resume":
            return self.norm.value(jobs.resume_job(self._job(a["ref"]), now=now)["state"])
        if st.op == "crash_after_claim":
            proc = subprocess.run(
                [sys.executable, "-c", _CHILD_CLAIM, now.isoformat()],
                cwd=REPO,
                env=dict(os.environ),
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            return [self.norm.token(t) for t in json.loads(proc.stdout)]
        if st.op == "recover":
            # What a restarting ticker does (InProcessCronScheduler.start).
            return scheduler.recover_interrupted(now=now)
        raise AssertionError(f"unknown step op {st.op!r}")

    def snapshot(self, st: Step, now: datetime, result: Any) -> Record:
        store = [{**self.norm.value(j)} for j in read_store()]
        raw_rows = executions.list_executions(limit=1000)
        ledger = self.norm.ledger(raw_rows)
        record: Record = {
            "step": st.label,
            "now": now.isoformat(),
            "result": result,
            "jobs": store,
            "ledger": ledger,
        }
        if st.op in ("tick", "tick_next"):
            new = [
                r
                for r in ledger
                if r["id"] not in self.seen_rows and r["status"] not in ("missed", "skipped")
            ]
            record["fired"] = [
                {
                    "job": r["job_id"],
                    "slot": r["scheduled_at"],
                    "slot_local": _local(r["scheduled_at"], self.scenario.zone),
                }
                for r in new
            ]
        self.seen_rows.update(r["id"] for r in ledger)
        return record

    def run(self) -> list[Record]:
        first = self.now_for(self.scenario.steps[0])
        with frozen(first) as clock:
            for st in self.scenario.steps:
                now = self.now_for(st)
                clock.move_to(now)
                result = self.perform(st, now)
                self.records.append(self.snapshot(st, now, result))
        return self.records


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(home: Path, golden: Golden, scenario: Scenario) -> None:
    if scenario.config is not None:
        write_config(home, scenario.config)
    records = Recorder(home, scenario).run()
    for check in scenario.checks:
        check(records)
    golden.check(
        scenario.name, {"scenario": scenario.name, "config": scenario.config, "steps": records}
    )


def _walk(home: Path, expr: str, start: datetime, end: datetime) -> tuple[list[str], dict]:
    """Create ``expr`` at ``start``; tick at each ``next_run_at`` + 1 s while it is < ``end``.

    Returns the fired slots (from the ledger, in order) and the final normalised job.
    """
    norm = Normaliser(home)
    nexts: list[datetime] = []
    with frozen(start) as clock:
        job = jobs.create_job(expr, {"kind": "python", "target": OK}, now=start)
        while True:
            current = jobs.get_job(job["id"])
            assert current is not None
            nxt = _parse(current["next_run_at"])
            assert not nexts or nxt > nexts[-1], "next_run_at must strictly increase"
            nexts.append(nxt)
            if nxt >= end:
                break
            now = nxt + timedelta(seconds=1)
            clock.move_to(now)
            assert scheduler.tick(now=now, sync=True) == 1, f"no fire at {now}"
            after = jobs.get_job(job["id"])
            assert after is not None and after["last_status"] == "ok"
            assert after["fire_claim"] is None
    rows = executions.list_executions(limit=None)
    assert {r["status"] for r in rows} == {"ok"}
    slots = [r["scheduled_at"] for r in rows]
    slots.sort(key=_parse)
    assert [_parse(s) for s in slots] == nexts[:-1], "fired slots == the next_run_at sequence"
    assert len(set(slots)) == len(slots), "a slot fired twice"
    final = jobs.get_job(job["id"])
    assert final is not None
    norm.job_id(job["id"])
    return slots, norm.value(final)


def test_full_year_walk_berlin_0900_no_drift(home: Path, golden: Golden) -> None:
    write_config(home, "cron:\n  timezone: Europe/Berlin\n")
    berlin = ZoneInfo("Europe/Berlin")
    slots, final = _walk(home, "0 9 * * *", utc(2025, 12, 31, 12), utc(2026, 12, 31, 23))
    local = [_parse(s).astimezone(berlin) for s in slots]
    assert len(local) == 365
    assert all((t.hour, t.minute, t.second) == (9, 0, 0) for t in local)
    assert [t.date() for t in local] == [
        (datetime(2026, 1, 1) + timedelta(days=i)).date() for i in range(365)
    ]
    assert final["repeat"]["completed"] == 365
    assert final["next_run_at"] == "2027-01-01T08:00:00+00:00"
    golden.check(
        "full_year_walk_berlin_0900",
        {
            "fires_local": [t.isoformat() for t in local],
            "final_job": final,
        },
    )


def test_every_15_minutes_across_berlin_fall_back(home: Path, golden: Golden) -> None:
    write_config(home, "cron:\n  timezone: Europe/Berlin\n")
    berlin = ZoneInfo("Europe/Berlin")
    # 01:20 CEST on 2026-10-25 until 03:30 CET: the 02:xx hour happens twice.
    slots, final = _walk(home, "*/15 * * * *", utc(2026, 10, 24, 23, 20), utc(2026, 10, 25, 2, 30))
    instants = [_parse(s) for s in slots]
    assert instants[0] == utc(2026, 10, 24, 23, 30)
    assert all(b - a == timedelta(minutes=15) for a, b in zip(instants, instants[1:], strict=False))
    local = [t.astimezone(berlin) for t in instants]
    fold_hour = [t for t in local if t.hour == 2]
    assert len(fold_hour) == 8, "*/15 fires at every matching instant of both passes"
    assert [t.strftime("%H:%M %Z") for t in fold_hour] == [
        "02:00 CEST",
        "02:15 CEST",
        "02:30 CEST",
        "02:45 CEST",
        "02:00 CET",
        "02:15 CET",
        "02:30 CET",
        "02:45 CET",
    ]
    golden.check(
        "every_15m_berlin_fall_back",
        {
            "fires_local": [t.isoformat() for t in local],
            "final_job": final,
        },
    )
