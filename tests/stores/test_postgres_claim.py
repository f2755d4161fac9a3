"""The PostgreSQL claim statement and what rides on it (SPEC §10, §11): which batch swaps
wake other nodes, the ledger pruned off the claim, a lone ledger writer without a
savepoint, and a database clock that one slow round trip cannot skew.

Real server (``pg_url``), real listener connections; the only seam used is
``_pgconn._wall`` (this machine's clock), as in ``test_postgres.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cron.ledger_sql import LedgerRow
from cron.stores import Swap, _pgconn, postgres
from cron.stores.postgres import PostgresJobStore
from cron.testing.store import T0, make_job


@pytest.fixture
def store(home: Path, pg_url: str) -> Iterator[PostgresJobStore]:
    s = PostgresJobStore(pg_url)
    yield s
    s.close()


def _row(job_id: str, status: str = "claimed") -> LedgerRow:
    at = T0.isoformat()
    return LedgerRow(uuid.uuid4().hex, job_id, status, at, at, "test", "test:1:1", "job")


def _at(job: dict[str, Any], when: datetime | None) -> dict[str, Any]:
    return dict(job, next_run_at=when.isoformat() if when is not None else None)


def _notifications_until(listen: psycopg.Connection[Any], sentinel: str) -> list[str]:
    """The payloads heard on ``listen`` up to (not including) ``sentinel``, in commit order."""
    out: list[str] = []
    for note in listen.notifies(timeout=5.0):
        if note.payload == sentinel:
            return out
        out.append(note.payload)
    raise AssertionError(f"no notification {sentinel!r} within 5 s; heard {out}")


# -- who is woken ---------------------------------------------------------------------


def test_a_batch_swap_wakes_other_nodes_only_for_a_wake_time_moved_earlier(
    store: PostgresJobStore, pg_url: str
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as listen:
        listen.execute(f"LISTEN {postgres.CHANNEL}")
        job = make_job(next_run_at=T0)
        rev = store.insert(job).rev  # heard: an insert
        # A claim moves the wake time later: nobody needs to wake for it.
        claimed = store.swap_many(
            [Swap(job["id"], rev, _at(job, T0 + timedelta(hours=1)), (_row(job["id"]),))]
        )[0]
        assert claimed is not None
        # Moved earlier: every node must look again (heard).
        earlier = store.swap_many([Swap(job["id"], claimed.rev, _at(job, T0), ())])[0]
        assert earlier is not None
        # To no wake time at all: not heard; from none to a time: heard.
        none = store.swap_many([Swap(job["id"], earlier.rev, _at(job, None), ())])[0]
        assert none is not None
        again = store.swap_many([Swap(job["id"], none.rev, _at(job, T0), ())])[0]
        assert again is not None
        # A user's edit goes through swap, which always notifies (heard).
        assert (
            store.swap(job["id"], again.rev, dict(_at(job, T0 + timedelta(days=1)), name="renamed"))
            is not None
        )
        sentinel = make_job()
        store.insert(sentinel)
        # In commit order, so everything before the sentinel has arrived.
        assert _notifications_until(listen, sentinel["id"]) == [job["id"]] * 4


def test_the_claim_its_ledger_rows_and_the_job_commit_in_one_transaction(
    store: PostgresJobStore, pg_url: str
) -> None:
    job = make_job()
    rev = store.insert(job).rev
    claim, missed = _row(job["id"]), _row(job["id"], "missed")
    [won] = store.swap_many(
        [Swap(job["id"], rev, _at(job, T0 + timedelta(hours=1)), (claim, missed))]
    )
    assert won is not None
    with psycopg.connect(pg_url, autocommit=True) as conn:
        # xmin: the transaction that wrote each row version — one for all three.
        (job_xmin,) = conn.execute(
            "SELECT xmin::text FROM cronkit_jobs WHERE id = %s", (job["id"],)
        ).fetchone() or (None,)
        rows = dict(conn.execute("SELECT id, xmin::text FROM executions").fetchall())
    assert job_xmin is not None
    assert rows == {claim.id: job_xmin, missed.id: job_xmin}


def test_a_batch_naming_two_revisions_of_one_job_applies_them_in_order(
    store: PostgresJobStore,
) -> None:
    job = make_job()
    rev = store.insert(job).rev
    assert isinstance(rev, int)
    first, second = _row(job["id"]), _row(job["id"])
    # The second names the revision the first one leaves (this store's revisions count up).
    out = store.swap_many(
        [
            Swap(job["id"], rev, dict(job, name="first"), (first,)),
            Swap(job["id"], rev + 1, dict(job, name="second"), (second,)),
        ]
    )
    assert [o.rev if o is not None else None for o in out] == [rev + 1, rev + 2]
    got = store.get(job["id"])
    assert got is not None and (got.job["name"], got.rev) == ("second", rev + 2)
    with store.ledger().read() as conn:
        assert conn is not None
        ids = {r[0] for r in conn.execute("SELECT id FROM executions")}
    assert ids == {first.id, second.id}


# -- the ledger, pruned off the claim -----------------------------------------------------


def test_the_ledger_is_pruned_every_few_rows_not_on_every_claim(
    store: PostgresJobStore, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "PRUNE_EVERY", 4)
    monkeypatch.setattr(postgres, "KEEP_PER_JOB", 3)
    job = make_job()
    rev = store.insert(job).rev

    def rows() -> int:
        with psycopg.connect(pg_url) as conn:
            found = conn.execute(
                "SELECT count(*) FROM executions WHERE job_id = %s", (job["id"],)
            ).fetchone()
        assert found is not None
        return int(found[0])

    counts = []
    for i in range(9):
        won = store.swap_many(
            [Swap(job["id"], rev, dict(job, name=f"n{i}"), (_row(job["id"], "missed"),))]
        )[0]
        assert won is not None
        rev = won.rev
        counts.append(rows())
    # Pruned to 3 after the 4th and the 8th row; between, at most PRUNE_EVERY more.
    assert counts == [1, 2, 3, 3, 4, 5, 6, 3, 4]


# -- a lone ledger writer -------------------------------------------------------------------


def test_a_lone_ledger_writer_that_fails_leaves_nothing(store: PostgresJobStore) -> None:
    ledger = store.ledger()

    def fails(conn: Any) -> None:
        conn.execute(
            "INSERT INTO webhook_nonces (signature, expires_at) VALUES (?, ?)", ("lost", 1.0)
        )
        raise ValueError("after the insert")

    with pytest.raises(ValueError, match="after the insert"):
        ledger.transact(fails)
    assert (
        ledger.transact(
            lambda conn: (
                conn.execute(
                    "INSERT INTO webhook_nonces (signature, expires_at) VALUES (?, ?)",
                    ("kept", 2.0),
                ).rowcount
            )
        )
        == 1
    )
    with ledger.read() as conn:
        assert conn is not None
        names = [r[0] for r in conn.execute("SELECT signature FROM webhook_nonces")]
    assert names == ["kept"]


# -- the clock ----------------------------------------------------------------------------------


def _server_now(url: str) -> datetime:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


class _SlowTrips:
    """This machine's clock, with the end of chosen round trips read ``late`` seconds late
    (a process descheduled between the query and reading the clock)."""

    def __init__(self, late: float, slow: set[int], shift: timedelta = timedelta(0)) -> None:
        self.late, self.slow, self.shift = late, slow, shift
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        now = datetime.now(UTC) + self.shift
        trip = (self.calls + 1) // 2  # calls 1, 2 are trip 1; 3, 4 trip 2 ...
        if self.calls % 2 == 0 and trip in self.slow:
            return now + timedelta(seconds=self.late)
        return now


def _remeasure(s: PostgresJobStore, wall: _SlowTrips, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pgconn, "_wall", wall)
    s._offset_at = 0.0  # due for a measurement
    s.clock()


def test_one_slow_round_trip_does_not_skew_the_clock(
    store: PostgresJobStore, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.clock()
    store._offset = None  # no good offset to keep: this measurement alone decides
    _remeasure(store, _SlowTrips(2.0, {1}), monkeypatch)
    monkeypatch.setattr(_pgconn, "_wall", lambda: datetime.now(UTC))
    assert abs((_server_now(pg_url) - store.clock()).total_seconds()) < 0.25


def test_a_measurement_worse_than_the_kept_offset_is_not_taken(
    store: PostgresJobStore, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.clock()
    kept = store._offset
    _remeasure(store, _SlowTrips(2.0, {1, 2, 3}), monkeypatch)  # every trip slow
    assert store._offset == kept
    monkeypatch.setattr(_pgconn, "_wall", lambda: datetime.now(UTC))
    assert abs((_server_now(pg_url) - store.clock()).total_seconds()) < 0.25


def test_a_stepped_clock_is_followed_at_the_next_measurement(
    store: PostgresJobStore, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.clock()
    step = timedelta(hours=1)
    # This machine's clock jumps an hour ahead, and the trips are slow as well: the kept
    # offset is then provably wrong (the two disagree beyond both error bounds).
    _remeasure(store, _SlowTrips(0.2, {1, 2, 3}, shift=step), monkeypatch)
    monkeypatch.setattr(_pgconn, "_wall", lambda: datetime.now(UTC) + step)
    assert abs((_server_now(pg_url) - store.clock()).total_seconds()) < 0.25
