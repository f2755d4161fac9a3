"""Self-fencing (SPEC §13): a node that cannot keep its run's claim live ends the run first.

A real PostgreSQL server is stopped under a running job (``pg_ctl stop``): the claim
keeper's refreshes fail, and the run's process group must be gone before the claim
it last wrote could be judged stale by the database's clock — so no other node can
start the job while it still runs. Back up, the run's result is recorded
``interrupted`` naming the fencing, and its slot ran once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cron import executions, jobs, scheduler
from cron.claim import parse_ts
from cron.store import get_store, set_store
from cron.testing.postgres import PostgresServer
from tests.conftest import write_config

TTL = 6.0


@pytest.fixture
def pg_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresServer]:
    """The home's store on a PostgreSQL server of its own (this test stops it)."""
    write_config(home, f"cron:\n  claim_ttl: {TTL:g}\n  timezone: UTC\n")
    with PostgresServer(use_env=False) as server:
        monkeypatch.setenv("CRONKIT_STORE", server.create_database())
        set_store(None)
        try:
            yield server
        finally:
            scheduler.interrupt_running(term_grace=1.0)
            scheduler.wait_for_running(10)
            scheduler.allow_starts()
            set_store(None)


def _wait(cond, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def _due_job(action: str | dict[str, object]) -> dict[str, object]:
    return jobs.create_job(
        "every 1h", action, name="fenced", now=datetime.now(UTC) - timedelta(hours=1, seconds=1)
    )


def test_a_command_whose_claim_cannot_be_refreshed_ends_before_the_claim_is_stale(
    pg_home: PostgresServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = _due_job("sleep 120")
    assert scheduler.tick(sync=False) == 1
    run = _wait(
        lambda: next((r for r in scheduler.live_runs() if r.group is not None), None),
        20,
        "the command to start",
    )
    group = run.group
    assert group is not None and group.alive()
    time.sleep(TTL / 3 + 0.5)  # at least one refresh went through before the cut
    last = parse_ts(jobs.get_job(job["id"])["fire_claim"]["at"])
    assert last is not None
    # The database's clock, as this node measures it, minus this machine's — taken
    # while the server is up: `store.clock()` with the server gone may first wait out
    # a reconnect attempt, and would date the group's end by when that gave up.
    offset = get_store().clock() - datetime.now(UTC)

    caplog.set_level(logging.WARNING, logger="cron")
    pg_home.stop_server("immediate")
    _wait(lambda: not group.alive(), TTL * 2, "the fenced command's group to end")
    gone_at = datetime.now(UTC) + offset
    # The claim this node last wrote is no older than `last`: it was still live when
    # the command was gone, so no node could have taken the job over before that.
    assert gone_at < last + timedelta(seconds=TTL), (gone_at, last)
    # ...and it was not ended at the first failed refresh, only when it had to be.
    assert gone_at >= last + timedelta(seconds=TTL / 3), (gone_at, last)
    assert any(
        f"job {job['id']}" in r.getMessage()
        and "fenced" in r.getMessage()
        and r.levelno == logging.ERROR
        for r in caplog.records
    ), caplog.text

    pg_home.start_server()
    assert scheduler.wait_for_running(30), "the fenced run was never recorded"
    rows = [r for r in executions.list_executions(job["id"]) if r["status"] != "claimed"]
    assert [r["status"] for r in rows] == ["interrupted"], rows
    assert "fenced: its claim could not be refreshed" in (rows[0]["error"] or ""), rows
    after = jobs.get_job(job["id"])
    assert after["last_status"] == "interrupted" and not after.get("fire_claim"), after
    # The slot ran once: a tick now (the claim released) does not run it again.
    assert scheduler.tick() == 0
    slots = [r["scheduled_at"] for r in executions.list_executions(job["id"])]
    assert len(slots) == len(set(slots)) == 1, slots


def test_a_python_target_cannot_be_fenced_and_says_so(
    pg_home: PostgresServer,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mod = tmp_path / "fence_target.py"
    mod.write_text(
        "import time\n\ndef run():\n    time.sleep(%g)\n    return 'done'\n" % (TTL * 1.2),
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    job = _due_job({"kind": "python", "target": "fence_target:run"})
    caplog.set_level(logging.WARNING, logger="cron")
    assert scheduler.tick(sync=False) == 1
    _wait(lambda: scheduler.live_runs(), 20, "the python run to start")
    pg_home.stop_server("immediate")
    _wait(
        lambda: any("cannot be fenced" in r.getMessage() for r in caplog.records),
        TTL * 2,
        "the ERROR that a python target cannot be fenced",
    )
    record = next(r for r in caplog.records if "cannot be fenced" in r.getMessage())
    assert record.levelno == logging.ERROR and job["id"] in record.getMessage()
    pg_home.start_server()
    assert scheduler.wait_for_running(30)


def test_the_claim_keeper_refreshes_every_held_claim_in_one_write_per_round(
    home: Path,
) -> None:
    """Claims taken at different moments are re-dated together: rounds, not jobs, cost writes."""
    ttl = 1.5
    write_config(home, f"cron:\n  claim_ttl: {ttl:g}\n  timezone: UTC\n  max_parallel_jobs: 8\n")
    set_store(None)
    held = []
    for i in range(6):
        held.append(_due_job(f"sleep {3.5 - i * 0.15:g}"))
        assert scheduler.tick(sync=False) == 1
        time.sleep(0.15)  # claims taken 0.15 s apart: their refresh times differ
    keeper = scheduler.claim_keeper()
    rounds_before = keeper.rounds
    started = time.monotonic()
    time.sleep(2.0)
    ages = []
    for job in held:
        claim = jobs.get_job(job["id"])["fire_claim"]
        ages.append((get_store().clock() - parse_ts(claim["at"])).total_seconds())
    rounds = keeper.rounds - rounds_before
    elapsed = time.monotonic() - started
    assert scheduler.wait_for_running(30)
    every = ttl / 3
    # One job per round would be 6 × elapsed / every; coalesced they share rounds.
    assert 1 <= rounds <= elapsed / every + 2, (rounds, elapsed)
    assert max(ages) < ttl, ages  # and every claim stayed live meanwhile
    assert all(
        r["status"] == "ok"
        for j in held
        for r in executions.list_executions(j["id"])
        if r["status"] != "claimed"
    )


def test_fencing_notes_for_runs_not_started_are_kept_bounded() -> None:
    # A note waits for its queued run to start; a note whose run already ended is
    # never consumed, so the oldest are dropped beyond MAX_FENCED_NOTES.
    from cron.live_runs import MAX_FENCED_NOTES, LiveRuns

    runs = LiveRuns()
    for n in range(MAX_FENCED_NOTES + 1):
        assert runs.fence(f"t{n}", f"note {n}") is None
    assert runs.fenced_note("t0") is None
    assert runs.fenced_note(f"t{MAX_FENCED_NOTES}") == f"note {MAX_FENCED_NOTES}"
    assert runs.fenced_note("t1") == "note 1"
    assert runs.fenced_note("t1") is None  # consumed
