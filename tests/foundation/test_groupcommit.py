"""Group commit (``cron.groupcommit``) and the APIs built on it, with real threads.

The claim and the run result each go through a :class:`GroupCommit` (so does the
webhook's replay record: phase 4, ``tests/phase4/test_replay_record_concurrency.py``):
concurrent callers share one durable write, and each still returns only once its own
request is written. These tests hold a write open on an event to make the batching
deterministic — no sleeps decide them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cron import executions, jobs
from cron.groupcommit import GroupCommit, Pending
from cron.store import get_store
from cron.stores import open_store

T0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
WAIT = 10.0  # generous bound for a thread to reach a point; never reached when correct


@dataclass
class Req(Pending):
    value: int
    result: int | None = None


class Recorder:
    """A ``write`` that records its batches and can be held open on a gate."""

    def __init__(self, *, fail_on: Callable[[list[Req]], bool] = lambda batch: False) -> None:
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.fail_on = fail_on

    def __call__(self, batch: list[Req]) -> None:
        self.batches.append([r.value for r in batch])
        self.entered.set()
        assert self.gate.wait(WAIT)
        if self.fail_on(batch):
            raise OSError(f"disk full writing {[r.value for r in batch]}")
        for r in batch:
            r.result = r.value * 10


def _wait_until(cond: Callable[[], bool]) -> None:
    done = threading.Event()
    for _ in range(int(WAIT / 0.005)):
        if cond():
            return
        done.wait(0.005)
    raise AssertionError("condition not reached")


def _held_open(
    write: Recorder, first: Callable[[GroupCommit[Req]], object] | None = None
) -> tuple[GroupCommit[Req], threading.Thread]:
    """A GroupCommit whose first write (of ``Req(0)``, or whatever ``first(gc)`` submits)
    blocks on the gate, so every later caller queues behind it until the test opens it."""
    gc: GroupCommit[Req] = GroupCommit(write)
    write.gate.clear()
    leader = threading.Thread(target=first or (lambda g: g.submit(Req(0))), args=(gc,))
    leader.start()
    assert write.entered.wait(WAIT)  # the leader is inside its write, holding the gate
    return gc, leader


def _start(*threads: threading.Thread) -> None:
    for t in threads:
        t.start()


def _join(*threads: threading.Thread) -> None:
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive(), f"{t.name} still blocked"


def test_a_lone_request_is_written_alone_and_returns_its_result() -> None:
    write = Recorder()
    gc: GroupCommit[Req] = GroupCommit(write)
    req = gc.submit(Req(3))
    assert (req.done, req.result, write.batches) == (True, 30, [[3]])
    assert gc.submit(Req(4)).result == 40
    assert write.batches == [[3], [4]]


def test_requests_queued_during_a_write_share_the_next_one() -> None:
    write = Recorder()
    results: dict[int, int | None] = {}

    def submit(gc: GroupCommit[Req], value: int) -> None:
        results[value] = gc.submit(Req(value)).result

    gc, first = _held_open(write, lambda g: submit(g, 0))
    others = [threading.Thread(target=submit, args=(gc, v)) for v in range(1, 9)]
    _start(*others)
    _wait_until(lambda: gc.queued == 8)
    write.gate.set()
    _join(first, *others)
    assert write.batches[0] == [0]
    assert sorted(write.batches[1]) == list(range(1, 9))  # 8 requests, one write
    assert len(write.batches) == 2
    assert results == {v: v * 10 for v in range(9)}


def test_submit_many_lands_in_one_batch_with_what_else_is_queued() -> None:
    write = Recorder()
    gc, first = _held_open(write)
    single = threading.Thread(target=gc.submit, args=(Req(1),))
    single.start()
    _wait_until(lambda: gc.queued == 1)
    got: list[Req] = []
    many = threading.Thread(target=lambda: got.extend(gc.submit_many([Req(2), Req(3), Req(4)])))
    many.start()
    _wait_until(lambda: gc.queued == 4)
    write.gate.set()
    _join(first, single, many)
    assert write.batches == [[0], [1, 2, 3, 4]]
    assert [r.result for r in got] == [20, 30, 40]
    assert gc.submit_many([]) == []


def test_a_leader_returns_after_its_own_batch_not_after_everyone_elses() -> None:
    write = Recorder()
    returned = threading.Event()

    def lead(gc: GroupCommit[Req]) -> None:
        gc.submit(Req(0))
        returned.set()

    gc, leader = _held_open(write, lead)
    follower = threading.Thread(target=gc.submit, args=(Req(1),))
    follower.start()
    _wait_until(lambda: gc.queued == 1)
    write.entered.clear()
    write.gate.set()
    assert write.entered.wait(WAIT)  # the second batch is being written ...
    write.gate.clear()
    assert returned.wait(WAIT)  # ... and the first leader is already back
    write.gate.set()
    _join(follower, leader)
    assert write.batches == [[0], [1]]


def test_a_failed_write_fails_every_request_in_its_batch_and_only_those() -> None:
    write = Recorder(fail_on=lambda batch: any(r.value == 1 for r in batch))
    errors: dict[int, str] = {}

    def submit(gc: GroupCommit[Req], value: int) -> None:
        try:
            gc.submit(Req(value))
        except OSError as exc:
            errors[value] = str(exc)

    gc, first = _held_open(write, lambda g: submit(g, 0))
    others = [threading.Thread(target=submit, args=(gc, v)) for v in (1, 2)]
    _start(*others)
    _wait_until(lambda: gc.queued == 2)
    write.gate.set()
    _join(first, *others)
    assert 0 not in errors
    assert set(errors) == {1, 2}  # both in the failed batch, each raised in its own thread
    assert "disk full" in errors[1]
    assert gc.submit(Req(5)).result == 50  # leadership was released: later writes proceed


class Interrupted(BaseException):
    """Raised in the main thread by the test's signal handler (a KeyboardInterrupt stand-in)."""


def test_a_caller_interrupted_while_waiting_does_not_strand_the_queue() -> None:
    import signal

    write = Recorder()
    gc, leader = _held_open(write)
    later: list[int | None] = []
    behind = threading.Thread(target=lambda: later.append(gc.submit(Req(2)).result))

    def interrupt_main_when_queued() -> None:
        _wait_until(lambda: gc.queued == 1)  # the main thread's request waits
        behind.start()
        _wait_until(lambda: gc.queued == 2)  # and one more behind it
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)

    def raise_interrupted(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGUSR1, raise_interrupted)
    try:
        threading.Thread(target=interrupt_main_when_queued).start()
        with pytest.raises(Interrupted):
            gc.submit(Req(1))  # blocks in the main thread until the signal
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert gc.queued == 1  # the interrupted caller's request was withdrawn
    write.gate.set()
    _join(leader, behind)  # the caller behind the interrupted one was not stranded
    assert write.batches == [[0], [2]]
    assert later == [20]


# -- the APIs on top: claims and results ---------------------------------------------------


def _due_job(schedule: str = "every 1h") -> str:
    job = jobs.create_job(schedule, {"kind": "command", "command": "true"}, now=T0)
    return str(job["id"])


def _together(n: int, fn: Callable[[int], object]) -> list[object]:
    """Run ``fn(i)`` for i in range(n) in n threads released at once."""
    barrier = threading.Barrier(n)
    out: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait(WAIT)
        out[i] = fn(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive()
    return out


def test_concurrent_claims_of_one_slot_have_exactly_one_winner(home: Path) -> None:
    job_id = _due_job()
    later = T0 + timedelta(hours=1, seconds=1)
    tokens = _together(12, lambda i: jobs.claim_job_for_fire(job_id, now=later))
    winners = [t for t in tokens if t is not None]
    assert len(winners) == 1
    job = jobs.get_job(job_id)
    assert job is not None and job["fire_claim"]["token"] == winners[0]
    rows = executions.list_executions(job_id=job_id)
    assert [r["id"] for r in rows] == winners


def test_concurrent_claims_of_different_jobs_all_win_and_all_are_durable(home: Path) -> None:
    ids = [_due_job() for _ in range(10)]
    later = T0 + timedelta(hours=1, seconds=1)
    outcomes = _together(10, lambda i: jobs.claim_job_for_fire_ex(ids[i], now=later))
    assert all(getattr(o, "won", False) for o in outcomes)
    # A fresh store object reads the file itself: every claim must be on disk.
    fresh = open_store(get_store().url)
    try:
        on_disk = {s.job["id"]: s.job for s in fresh.scan()}
    finally:
        fresh.close()
    for job_id, outcome in zip(ids, outcomes, strict=True):
        assert on_disk[job_id]["fire_claim"]["token"] == getattr(outcome, "token", None)


def test_concurrent_results_each_apply_only_with_their_own_token(home: Path) -> None:
    ids = [_due_job() for _ in range(6)]
    later = T0 + timedelta(hours=1, seconds=1)
    tokens = [jobs.claim_job_for_fire(job_id, now=later) for job_id in ids]
    assert all(tokens)

    def mark(i: int) -> bool:
        # Odd workers present a wrong token: a stale owner must change nothing.
        token = str(tokens[i]) if i % 2 == 0 else "not-the-token"
        return jobs.mark_job_run(ids[i], token, success=True, now=later)

    applied = _together(6, mark)
    assert applied == [True, False, True, False, True, False]
    for i, job_id in enumerate(ids):
        job = jobs.get_job(job_id)
        assert job is not None
        assert (job["fire_claim"] is None) is (i % 2 == 0)


# JsonJobStore.write_bytes is that store's crash seam (one file write per group commit).
@pytest.mark.usefixtures("json_store")
@pytest.mark.parametrize("bad", [OSError("read-only file system")])
def test_a_failed_store_write_reaches_every_claimer(
    home: Path, monkeypatch: pytest.MonkeyPatch, bad: OSError
) -> None:
    ids = [_due_job() for _ in range(4)]
    before = (home / "cron" / "jobs.json").read_bytes()
    store = get_store()

    def refuse(path: object, data: bytes) -> None:
        raise bad

    monkeypatch.setattr(store, "write_bytes", refuse)
    later = T0 + timedelta(hours=1, seconds=1)

    def claim(i: int) -> str:
        try:
            jobs.claim_job_for_fire(ids[i], now=later)
        except OSError as exc:
            return str(exc)
        return "no error"

    assert _together(4, claim) == ["read-only file system"] * 4
    assert (home / "cron" / "jobs.json").read_bytes() == before
    assert executions.list_executions() == []


def test_a_failing_ledger_write_rolls_back_alone_in_a_shared_transaction(home: Path) -> None:
    """Ledger writes that arrive together share one transaction, each in a savepoint."""
    import sqlite3

    executions.record_claim("t0", "job", scheduled_at=None, source="test")  # creates the ledger

    def insert(token: str) -> Callable[[sqlite3.Connection], str]:
        def fn(conn: sqlite3.Connection) -> str:
            conn.execute(
                "INSERT INTO executions (id, job_id, status, source) VALUES (?, 'job', 'ok', 't')",
                (token,),
            )
            return token

        return fn

    def insert_then_fail(conn: sqlite3.Connection) -> None:
        insert("t-doomed")(conn)
        raise ValueError("constraint the op found broken")

    from cron.ledgerdb import _Op
    from cron.store import get_store

    ops = [_Op(insert("t1")), _Op(insert_then_fail), _Op(insert("t2"))]
    get_store().ledger()._write_ops(ops)  # one batch, as the group commit hands it over
    assert [op.result for op in ops] == ["t1", None, "t2"]
    assert ops[0].error is None and ops[2].error is None
    assert isinstance(ops[1].error, ValueError)
    ids = {r["id"] for r in executions.list_executions(limit=None)}
    assert ids == {"t0", "t1", "t2"}  # the failed op's insert is gone, the others committed
