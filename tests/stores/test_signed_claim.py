"""A signed webhook fire's replay record and its claim (``jobs.claim_signed_fire``).

The webhook records a request's signature and claims the job with one store call,
:meth:`cron.stores.JobStore.swap_many_unless_replayed` — one transaction on SQLite,
the default (record, then swap) on json and PostgreSQL. These run on the configured
store (``CRONKIT_STORE`` / ``CRONKIT_TEST_STORE``); the atomicity test is SQLite's.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cron import executions, jobs, webhook
from cron.claim import ClaimReason
from cron.errors import StoreConfigError
from cron.store import get_store, set_store
from cron.stores import Replay
from cron.stores.sqlite import SqliteJobStore
from tests.support import suite

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
AT = T0.timestamp()


def _due(name: str = "j") -> str:
    job = jobs.create_job("every 1h", "true", name=name, now=T0 - timedelta(hours=1))
    return str(job["id"])


def _replay(digest: str, at: float = AT) -> Replay:
    return Replay(digest, at, 600.0)


def _claims(job_id: str) -> list[str]:
    return [r["status"] for r in executions.list_executions(job_id, limit=None)]


def test_first_request_claims_and_its_replay_is_refused_unchanged(home: Path) -> None:
    job_id = _due()
    won = jobs.claim_signed_fire(job_id, _replay("d1"), now=T0)
    assert won is not None and won.token is not None
    before = jobs.get_job(job_id)
    assert jobs.claim_signed_fire(job_id, _replay("d1", AT + 1), now=T0) is None
    assert jobs.get_job(job_id) == before
    assert _claims(job_id) == ["claimed"]


def test_a_lost_claim_still_records_the_signature(home: Path) -> None:
    job_id = _due()
    assert jobs.claim_signed_fire(job_id, _replay("first"), now=T0) is not None
    lost = jobs.claim_signed_fire(job_id, _replay("second"), now=T0)
    assert lost is not None and lost.token is None and lost.code is not ClaimReason.CLAIMED
    # Refused now, so it may not be replayed into a later slot either.
    later = T0 + timedelta(hours=2)
    assert jobs.claim_signed_fire(job_id, _replay("second", AT + 1), now=later) is None
    assert webhook.remember_signature("second", ttl=600, now=AT + 2) is False


def test_unknown_job_is_no_such_job_then_a_replay(home: Path) -> None:
    out = jobs.claim_signed_fire("nope", _replay("d"), now=T0)
    assert out is not None and out.code is ClaimReason.NO_SUCH_JOB
    assert jobs.claim_signed_fire("nope", _replay("d", AT + 1), now=T0) is None


def test_an_expired_signature_is_fresh_again(home: Path) -> None:
    job_id = _due()
    assert jobs.claim_signed_fire(job_id, Replay("d", AT, 10.0), now=T0) is not None
    assert jobs.claim_signed_fire(job_id, Replay("d", AT + 5, 10.0), now=T0) is None
    again = jobs.claim_signed_fire(job_id, Replay("d", AT + 11, 10.0), now=T0)
    assert again is not None  # recorded anew; the claim itself is lost (claim live)
    assert again.token is None


def test_racing_requests_with_one_signature_claim_once(home: Path) -> None:
    job_ids = [_due(f"j{i}") for i in range(6)]
    start = threading.Barrier(12)
    results: list[object] = []
    lock = threading.Lock()

    def fire(i: int) -> None:
        start.wait()
        # Two threads per job: one signature each pair, so one of each pair is a replay.
        out = jobs.claim_signed_fire(job_ids[i // 2], _replay(f"sig-{i // 2}"), now=T0)
        with lock:
            results.append(out)

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    won = [r for r in results if r is not None and getattr(r, "token", None)]
    assert len(results) == 12
    assert results.count(None) == 6
    assert len(won) == 6
    for job_id in job_ids:
        assert _claims(job_id) == ["claimed"]


@pytest.fixture
def sqlite_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The SQLite store, whatever the suite runs with: the test is about its one transaction."""
    monkeypatch.setenv("CRONKIT_STORE", "sqlite")
    monkeypatch.delenv(suite.SUITE_ENV, raising=False)
    set_store(None)
    return home


def test_sqlite_records_nothing_when_the_claim_transaction_fails(sqlite_home: Path) -> None:
    store = get_store()
    assert isinstance(store, SqliteJobStore)
    job_id = _due()
    before = jobs.get_job(job_id)
    with sqlite3.connect(store.path) as conn:
        # A real database failure inside the transaction, after the signature and the swap.
        conn.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON executions "
            "BEGIN SELECT RAISE(ABORT, 'ledger full'); END"
        )
    with pytest.raises(StoreConfigError, match="ledger full"):
        jobs.claim_signed_fire(job_id, _replay("d"), now=T0)
    assert jobs.get_job(job_id) == before
    assert _claims(job_id) == []
    with sqlite3.connect(store.path) as conn:
        conn.execute("DROP TRIGGER boom")
        assert conn.execute("SELECT COUNT(*) FROM webhook_nonces").fetchone() == (0,)
    won = jobs.claim_signed_fire(job_id, _replay("d"), now=T0)
    assert won is not None and won.token is not None
