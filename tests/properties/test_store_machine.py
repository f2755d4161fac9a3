"""Property 3: the job store as a state machine, checked against a plain-dict model.

Rules: create (interval / cron / one-shot, enabled or not, optional
``repeat`` and ``catch_up``), update (name / schedule), pause, resume,
remove, claim (``claim_job_for_fire`` at the model clock, with no
``scheduled_at``, the due slot, a later slot, an earlier one or a future
one), mark run (ok / error, with the current, a stale or a made-up token),
advance the clock, reload from disk (a brand-new store object) and, on the
JSON store, crash mid-write (``os.replace`` raises after the temp file is
written, as a kill between write and rename would; a crashed process's
partial temp file is left behind too).

The model is written from SPEC §2-§3 (``next_run_at`` arithmetic for
intervals and ``*/M`` cron is done by hand here), not from ``cron.claim``.
It runs against the configured store (``CRONKIT_STORE``). Invariants after
every step: what is on disk (``jobs.json``, which must parse; or the
database's ``jobs`` rows) equals the model on every modelled field; at most
one claim per job and it is the newest token issued for that job;
``next_run_at`` is null exactly for paused, completed or spent jobs, and
otherwise strictly after the last fired slot; no (job, slot) is ever fired
twice; the store's wake index equals one rebuilt from what is on disk.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from tests.support.stores import disk_jobs, is_json, snapshot
from tests.support.suite import fresh_store_env

BASE = datetime(2031, 1, 6, tzinfo=UTC)  # on an hour boundary (cron arithmetic below)
CLAIM_TTL = 300.0
ONE_SHOT_GRACE = 120.0

# (text, kind, seconds): interval N s | cron every P s (``*/M`` minutes or hourly) | once in N s
SCHEDULES: list[tuple[str, str, int]] = [
    ("every 60s", "interval", 60),
    ("every 90s", "interval", 90),
    ("every 10m", "interval", 600),
    ("*/5 * * * *", "cron", 300),
    ("*/15 * * * *", "cron", 900),
    ("0 * * * *", "cron", 3600),
    ("in 1m", "once", 60),
    ("in 5m", "once", 300),
]

_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
MAX_EXAMPLES = {"ci": 40}.get(_PROFILE, settings().max_examples)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def _ts(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def grace(kind: str, seconds: int) -> float:
    return ONE_SHOT_GRACE if kind == "once" else min(max(seconds / 2, 120.0), 7200.0)


@dataclass
class MJob:
    """What the SPEC lets us predict about one job."""

    name: str
    kind: str
    seconds: int
    run_at: datetime | None  # one-shots
    enabled: bool
    state: str
    next_run_at: datetime | None
    times: int | None
    completed: int = 0
    catch_up: str | None = None
    claim: tuple[str, datetime] | None = None  # (token, at)
    last_scheduled_at: datetime | None = None
    last_status: str | None = None
    fired: set[datetime] = field(default_factory=set)
    tokens: list[str] = field(default_factory=list)

    def spent(self) -> bool:
        return self.times is not None and self.completed >= self.times

    def first_run(self, now: datetime) -> datetime | None:
        """SPEC §2: the first slot strictly after ``now``."""
        if self.kind == "interval":
            return now + timedelta(seconds=self.seconds)
        if self.kind == "cron":
            t = int(now.timestamp())
            return datetime.fromtimestamp((t // self.seconds + 1) * self.seconds, UTC)
        assert self.run_at is not None
        return self.run_at if self.run_at > now else None

    def after_fire(self, slot: datetime, now: datetime) -> datetime | None:
        """SPEC §2-§3: the first slot strictly after ``now``, anchored on the fired slot."""
        if self.spent() or self.kind == "once":
            return None
        if self.kind == "interval":
            step = self.seconds
            k = int((now - slot).total_seconds() // step) + 1
            return slot + timedelta(seconds=k * step)
        return self.first_run(now)

    def normalise(self) -> None:
        """SPEC §3: a spent job has no next run (it fires ``repeat.times`` times, never more)."""
        if self.spent():
            self.next_run_at = None


@contextlib.contextmanager
def _crash_before_rename() -> Iterator[None]:
    """Make the store's write die after its temp file is written (``os.replace`` raises).

    ``cron.paths.atomic_write_bytes`` renames with ``os.replace``; patching it
    (rather than the store's ``write_bytes`` seam) keeps the store's real write
    path under test, so a store that stops writing via temp + rename is caught.
    """

    def boom(*_a: object, **_k: object) -> None:
        raise OSError(5, "simulated crash between temp write and rename")

    with mock.patch.object(os, "replace", boom):
        yield


class StoreMachine(RuleBasedStateMachine):
    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        from cron.store import set_store

        self._tmp = tempfile.TemporaryDirectory(prefix="cronkit-p3-")
        self.home = Path(self._tmp.name) / "home"
        self.home.mkdir(mode=0o700)
        (self.home / "config.yaml").write_text(
            f"cron:\n  timezone: UTC\n  claim_ttl: {CLAIM_TTL:g}\n", encoding="utf-8"
        )
        self._saved = {k: os.environ.get(k) for k in ("CRONKIT_HOME", "TZ")}
        self._store_env = fresh_store_env()  # a fresh database per run on postgres
        self._store_env.__enter__()
        os.environ["CRONKIT_HOME"] = str(self.home)
        os.environ["TZ"] = "UTC"
        set_store(None)
        self.on_json = is_json()
        self.now = BASE
        self.model: dict[str, MJob] = {}
        self.all_fired: set[tuple[str, datetime]] = set()
        self.names = 0

    def teardown(self) -> None:
        from cron.store import set_store

        set_store(None)
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._store_env.__exit__(None, None, None)
        self._tmp.cleanup()

    # -- helpers -------------------------------------------------------------------

    @property
    def jobs_file(self) -> Path:
        return self.home / "cron" / "jobs.json"

    def _file_bytes(self) -> bytes | None:
        try:
            return self.jobs_file.read_bytes()
        except FileNotFoundError:
            return None

    def _expect_missing(self, job_id: str, fn: Any) -> None:
        from cron.errors import JobNotFoundError

        with pytest.raises(JobNotFoundError):
            fn()

    # -- rules -----------------------------------------------------------------------

    @rule(
        target=jobs,
        which=st.integers(0, len(SCHEDULES) - 1),
        enabled=st.booleans(),
        repeat=st.sampled_from([None, None, 1, 2]),
        catch_up=st.sampled_from([None, None, "once", "skip"]),
    )
    def create(self, which: int, enabled: bool, repeat: int | None, catch_up: str | None) -> str:
        from cron import jobs

        text, kind, secs = SCHEDULES[which]
        self.names += 1
        name = f"job {self.names}"
        rep = None if kind == "once" else repeat
        job = jobs.create_job(
            text, "true", name=name, repeat=rep, enabled=enabled, catch_up=catch_up, now=self.now
        )
        run_at = self.now + timedelta(seconds=secs) if kind == "once" else None
        m = MJob(
            name=name,
            kind=kind,
            seconds=secs,
            run_at=run_at,
            enabled=enabled,
            state="scheduled" if enabled else "paused",
            next_run_at=None,
            times=1 if kind == "once" else rep,
            catch_up=catch_up,
        )
        if enabled:
            m.next_run_at = m.first_run(self.now)
        self.model[job["id"]] = m
        return str(job["id"])

    @initialize(
        target=jobs,
        specs=st.lists(
            st.tuples(st.integers(0, len(SCHEDULES) - 1), st.sampled_from([None, 2])),
            min_size=1,
            max_size=3,
        ),
    )
    def seed_jobs(self, specs: list[tuple[int, int | None]]) -> Any:
        return multiple(*(self.create(which, True, rep, None) for which, rep in specs))

    @rule(job_id=jobs)
    def rename(self, job_id: str) -> None:
        from cron import jobs

        self.names += 1
        name = f"renamed {self.names}"
        if job_id not in self.model:
            self._expect_missing(job_id, lambda: jobs.update_job(job_id, name=name))
            return
        got = jobs.update_job(job_id, name=name, now=self.now)
        self.model[job_id].name = name
        assert got["name"] == name

    @rule(job_id=jobs, which=st.integers(0, len(SCHEDULES) - 1))
    def reschedule(self, job_id: str, which: int) -> None:
        from cron import jobs

        text, kind, secs = SCHEDULES[which]
        if job_id not in self.model:
            self._expect_missing(job_id, lambda: jobs.update_job(job_id, schedule=text))
            return
        jobs.update_job(job_id, schedule=text, now=self.now)
        m = self.model[job_id]
        m.kind, m.seconds = kind, secs
        m.run_at = self.now + timedelta(seconds=secs) if kind == "once" else None
        if kind == "once":
            m.times, m.completed = 1, 0
        if m.state == "completed":
            m.state = "scheduled" if m.enabled else "paused"
            m.completed = 0
        if m.state == "scheduled":
            m.next_run_at = m.first_run(self.now)
            if m.spent() and m.claim is None:
                m.state, m.next_run_at = "completed", None
        m.normalise()

    @rule(job_id=jobs)
    def pause(self, job_id: str) -> None:
        from cron import jobs
        from cron.errors import JobValueError

        if job_id not in self.model:
            self._expect_missing(job_id, lambda: jobs.pause_job(job_id))
            return
        m = self.model[job_id]
        if m.state == "completed":
            with pytest.raises(JobValueError):
                jobs.pause_job(job_id, now=self.now)
            return
        jobs.pause_job(job_id, now=self.now)
        if m.state != "paused":
            m.enabled, m.state, m.next_run_at = False, "paused", None

    @rule(job_id=jobs)
    def resume(self, job_id: str) -> None:
        from cron import jobs
        from cron.errors import JobValueError

        if job_id not in self.model:
            self._expect_missing(job_id, lambda: jobs.resume_job(job_id))
            return
        m = self.model[job_id]
        if m.state == "completed":
            with pytest.raises(JobValueError):
                jobs.resume_job(job_id, now=self.now)
            return
        jobs.resume_job(job_id, now=self.now)
        if m.state != "scheduled" or not m.enabled:
            m.enabled, m.state = True, "scheduled"
            m.next_run_at = m.first_run(self.now)
            if m.next_run_at is None:
                m.state, m.last_status = "completed", "missed"
            m.normalise()

    @rule(job_id=jobs)
    def remove(self, job_id: str) -> None:
        from cron import jobs

        assert jobs.remove_job(job_id) == (job_id in self.model)
        self.model.pop(job_id, None)

    def _model_claim(self, job_id: str, asked: datetime | None) -> datetime | None:
        """SPEC §3 claim rules: the slot this claim must win, or None."""
        m = self.model.get(job_id)
        if m is None or m.state == "completed":
            return None
        if not m.enabled or m.state == "paused":
            return None
        if m.claim is not None and 0 <= (self.now - m.claim[1]).total_seconds() < CLAIM_TTL:
            return None
        due = m.next_run_at
        if due is None or due > self.now:
            return None
        if asked is not None and (asked < due or asked > self.now):
            return None
        slot = asked if asked is not None else due
        late = (self.now - slot).total_seconds()
        if m.kind == "once":
            return None if late > ONE_SHOT_GRACE else slot
        if late > grace(m.kind, m.seconds) and (m.catch_up or "once") == "skip":
            return None
        return slot

    def _asked(self, job_id: str, mode: str) -> datetime | None:
        m = self.model.get(job_id)
        due = m.next_run_at if m is not None else None
        if mode == "none":
            return None
        if mode == "future":
            return self.now + timedelta(seconds=1)
        if due is None:
            return self.now
        if mode == "due":
            return due
        if mode == "before":
            return due - timedelta(seconds=1)
        # "later": the latest slot of the series not after now
        assert m is not None
        if m.kind == "once" or due > self.now:
            return due
        k = int((self.now - due).total_seconds() // m.seconds)
        return due + timedelta(seconds=k * m.seconds)

    @rule(job_id=jobs, mode=st.sampled_from(["none", "due", "later", "none", "before", "future"]))
    def claim(self, job_id: str, mode: str) -> None:
        from cron import jobs

        asked = self._asked(job_id, mode)
        expected = self._model_claim(job_id, asked)
        before = snapshot()
        token = jobs.claim_job_for_fire(job_id, scheduled_at=asked, now=self.now)
        if expected is None:
            assert token is None, f"claim won but the SPEC says nobody wins ({mode}, {asked})"
            assert snapshot() == before, "a lost claim changed the store"
            return
        assert token, f"claim lost but the SPEC says slot {expected} is due"
        m = self.model[job_id]
        stored = disk_jobs() or []
        fired = _ts(next(j for j in stored if j["id"] == job_id)["last_scheduled_at"])
        assert fired == expected
        assert (job_id, fired) not in self.all_fired, f"slot {fired} of {job_id} fired twice"
        self.all_fired.add((job_id, fired))
        m.fired.add(fired)
        m.claim = (token, self.now)
        m.tokens.append(token)
        m.last_scheduled_at = fired
        m.completed += 1
        m.next_run_at = m.after_fire(fired, self.now)

    @rule(job_id=jobs, finish=st.booleans())
    def run_when_due(self, job_id: str, finish: bool) -> None:
        """The ticker's cycle in one step: wait until due, claim, optionally mark ok."""
        m = self.model.get(job_id)
        if m is not None and m.next_run_at is not None and m.next_run_at > self.now:
            self.now = m.next_run_at
        self.claim(job_id, "none")
        if finish:
            self.mark_run(job_id, True, "current")

    @rule(job_id=jobs, ok=st.booleans(), which=st.sampled_from(["current", "stale", "bogus"]))
    def mark_run(self, job_id: str, ok: bool, which: str) -> None:
        from cron import jobs

        m = self.model.get(job_id)
        tokens = m.tokens if m is not None else []
        if which == "current" and m is not None and m.claim is not None:
            token = m.claim[0]
        elif which in ("current", "stale") and tokens:
            token = tokens[0]
        else:
            token = "f" * 32
        applies = m is not None and m.claim is not None and m.claim[0] == token
        got = jobs.mark_job_run(
            job_id, token, success=ok, error=None if ok else "it failed", now=self.now
        )
        assert got == applies, f"mark_job_run({which} token) returned {got}, expected {applies}"
        if applies:
            assert m is not None
            m.claim = None
            m.last_status = "ok" if ok else "error"
            if m.next_run_at is None and m.spent():
                m.state = "completed"

    @rule(seconds=st.sampled_from([1, 59, 60, 61, 119, 121, 150, 299, 300, 301, 600, 3600, 7300]))
    def advance_clock(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule()
    def reload_from_disk(self) -> None:
        from cron.store import JsonJobStore, get_store, set_store
        from cron.stores import open_store

        old = get_store()
        before = [s.job for s in old.scan()]
        set_store(None)
        fresh = get_store()
        assert fresh is not old and type(fresh) is type(old)
        assert [s.job for s in fresh.scan()] == before
        other = open_store(fresh.url)
        try:
            assert [s.job for s in other.scan()] == before
        finally:
            other.close()
        if self.on_json:
            assert JsonJobStore(self.jobs_file).load() == before

    # Temp file + rename is how jobs.json is written; a database store commits instead.
    @precondition(lambda self: self.on_json)
    @rule(op=st.sampled_from(["create", "rename", "claim"]), data=st.data())
    def crash_mid_write(self, op: str, data: st.DataObject) -> None:
        from cron import jobs

        live = sorted(self.model)
        if op != "create" and not live:
            op = "create"
        before = self._file_bytes()
        wrote = True
        with _crash_before_rename():
            try:
                if op == "create":
                    jobs.create_job("every 60s", "true", name="never stored", now=self.now)
                elif op == "rename":
                    job_id = live[data.draw(st.integers(0, len(live) - 1))]
                    jobs.update_job(job_id, name="never stored", now=self.now)
                else:
                    job_id = live[data.draw(st.integers(0, len(live) - 1))]
                    wrote = self._model_claim(job_id, None) is not None
                    token = jobs.claim_job_for_fire(job_id, now=self.now)
                    assert token is None and not wrote, "a crashed claim returned a token"
            except OSError:
                pass
            else:
                assert not wrote, (
                    f"{op}: the write was crashed before its rename, yet the operation "
                    "succeeded: the store did not write through temp file + rename"
                )
        assert self._file_bytes() == before, f"{op}: a crashed write changed jobs.json"
        strays = [
            p
            for p in self.jobs_file.parent.glob(".jobs.json.*.tmp")
            if p.name != ".jobs.json.killed.tmp"
        ]
        assert not strays, f"temp file left behind by a failed write: {strays}"
        # What a process killed mid-write leaves: a partial temp file. Reads ignore it.
        if before is not None:
            killed = self.jobs_file.parent / ".jobs.json.killed.tmp"
            killed.write_bytes(before[: len(before) // 2])

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def file_matches_model(self) -> None:
        on_disk = disk_jobs()  # jobs.json parsed (envelope and version checked), or the rows
        if on_disk is None:
            assert not self.model
            return
        stored = {j["id"]: j for j in on_disk}
        assert set(stored) == set(self.model), "jobs in file != jobs in model"
        tokens = [j["fire_claim"]["token"] for j in stored.values() if j.get("fire_claim")]
        assert len(tokens) == len(set(tokens)), "one claim token on two jobs"
        for job_id, m in self.model.items():
            j = stored[job_id]
            got = {
                "name": j["name"],
                "kind": j["schedule"]["kind"],
                "enabled": j["enabled"],
                "state": j["state"],
                "next_run_at": _ts(j["next_run_at"]),
                "times": j["repeat"]["times"],
                "completed": j["repeat"]["completed"],
                "claim": (j["fire_claim"]["token"], _ts(j["fire_claim"]["at"]))
                if j.get("fire_claim")
                else None,
                "last_scheduled_at": _ts(j.get("last_scheduled_at")),
                "last_status": j["last_status"],
            }
            want = {
                "name": m.name,
                "kind": m.kind,
                "enabled": m.enabled,
                "state": m.state,
                "next_run_at": m.next_run_at,
                "times": m.times,
                "completed": m.completed,
                "claim": m.claim,
                "last_scheduled_at": m.last_scheduled_at,
                "last_status": m.last_status,
            }
            diff = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
            assert not diff, f"job {job_id}: file != model (file, model): {diff}"
            # At most one live claim, and only ever the newest one issued.
            if m.claim is not None:
                assert m.tokens and m.claim[0] == m.tokens[-1]
            # next_run_at is null exactly for paused, completed or spent jobs ...
            idle = m.state in ("paused", "completed") or not m.enabled or m.spent()
            assert (got["next_run_at"] is None) == idle, (
                f"job {job_id}: next_run_at={j['next_run_at']} but state={m.state} "
                f"enabled={m.enabled} repeat={j['repeat']}"
            )
            # ... and otherwise strictly after the last fired slot.
            if not idle and m.fired:
                assert got["next_run_at"] > max(m.fired)

    @invariant()
    def due_index_matches_a_rebuild(self) -> None:
        # The store keeps its wake index write by write (JSON: DueIndex.with_changes;
        # SQLite: the wake_at column); what the ticker reads must equal an index built
        # fresh from what is on disk.
        from cron.store import due_index, get_store

        fresh = due_index(disk_jobs() or [], claim_ttl=CLAIM_TTL)
        store = get_store()
        assert store.next_wake() == fresh.wake_at()
        horizon = BASE + timedelta(days=3650)
        assert [s.job["id"] for s in store.scan(due_by=horizon)] == fresh.due_ids(horizon)


# The explain phase replays every step variant of a failing run (minutes for a
# stateful test); the shrunk step list is what a reader needs.
StoreMachine.TestCase.settings = settings(
    max_examples=MAX_EXAMPLES,
    stateful_step_count=30,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
TestStoreMachine = StoreMachine.TestCase


# -- failing examples found once, kept as explicit replays (stateful tests take no @example) --


class _Fixed:
    """Stands in for ``st.data()`` in a replay: every draw returns ``value``."""

    def __init__(self, value: int) -> None:
        self.value = value

    def draw(self, _strategy: object) -> int:
        return self.value


def _replay(steps: list[tuple[str, dict[str, Any]]]) -> None:
    """Run rule methods in order, checking the invariant after each; "@k" = k-th created id."""
    machine = StoreMachine()
    created: list[str] = []
    try:
        machine.file_matches_model()
        for name, kwargs in steps:
            args = {
                k: created[int(v[1:])] if isinstance(v, str) and v.startswith("@") else v
                for k, v in kwargs.items()
            }
            result = getattr(machine, name)(**args)
            if name == "create":
                created.append(result)
            machine.file_matches_model()
    finally:
        machine.teardown()


def test_replay_reschedule_of_spent_running_job() -> None:
    """A one-shot fires (run still going), then becomes 'every 60s': it is spent
    (repeat 1/1), so it must not get a next run — or it fires beyond repeat.times."""
    _replay(
        [
            ("create", {"which": 6, "enabled": True, "repeat": None, "catch_up": None}),
            ("run_when_due", {"job_id": "@0", "finish": False}),
            ("reschedule", {"job_id": "@0", "which": 0}),
        ]
    )


def test_replay_resume_of_spent_running_job() -> None:
    """A 2-times job fires its last run, is paused and resumed while that run is
    still going: resume must not hand a spent job a next run."""
    _replay(
        [
            ("create", {"which": 0, "enabled": True, "repeat": 2, "catch_up": None}),
            ("run_when_due", {"job_id": "@0", "finish": True}),
            ("run_when_due", {"job_id": "@0", "finish": False}),
            ("pause", {"job_id": "@0"}),
            ("resume", {"job_id": "@0"}),
            ("run_when_due", {"job_id": "@0", "finish": True}),
        ]
    )


@pytest.mark.usefixtures("json_store")  # crash_mid_write is a jobs.json rule
def test_replay_crash_then_reload() -> None:
    """Crash a create and a claim mid-write, then reload: nothing half-written shows."""
    _replay(
        [
            ("create", {"which": 3, "enabled": True, "repeat": None, "catch_up": "skip"}),
            ("advance_clock", {"seconds": 300}),
            ("crash_mid_write", {"op": "claim", "data": _Fixed(0)}),
            ("crash_mid_write", {"op": "create", "data": _Fixed(0)}),
            ("reload_from_disk", {}),
            ("claim", {"job_id": "@0", "mode": "due"}),
        ]
    )
