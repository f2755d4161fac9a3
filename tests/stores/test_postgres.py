"""The PostgreSQL store beyond the shared contract: URLs and errors, the schema, the
non-blocking batch claim, the claim and its ledger row in one transaction, change
notifications, the database clock, forks, and a server that goes away and comes back.

Every test runs against a real server (``pg_server`` / ``pg_url``, see
``cron.testing.postgres``); nothing about the database is mocked.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cron.errors import SchemaVersionError, StoreConfigError, StoreUnavailableError
from cron.ledger_sql import LedgerRow
from cron.stores import Swap, _pgconn, _pgproc, open_store
from cron.stores.postgres import SCHEMA_VERSION, PostgresJobStore
from cron.testing.postgres import PostgresServer, _free_port
from cron.testing.store import T0, make_job

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-pw"


def _env(home: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env["TZ"] = "UTC"
    if home is not None:
        env["CRONKIT_HOME"] = str(home)
    return env


def _python(
    code: str, *, home: Path | None = None, prefix: tuple[str, ...] = (), timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-c", code],
        env=_env(home),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _with_password(url: str, password: str = SECRET) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


def _renamed(job: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(job, name=name)


@pytest.fixture
def store(home: Path, pg_url: str) -> Iterator[PostgresJobStore]:
    s = PostgresJobStore(pg_url)
    yield s
    s.close()


@pytest.fixture
def empty_url(pg_server: PostgresServer) -> Iterator[str]:
    """A database without the cronkit schema."""
    url = pg_server.create_database(empty=True)
    yield url
    pg_server.drop_database(url)


def _regclass(url: str, name: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


# -- URLs and errors -----------------------------------------------------------------


def test_an_unreachable_database_is_a_one_line_error_with_the_password_masked(
    home: Path,
) -> None:
    url = f"postgresql://cron:{SECRET}@127.0.0.1:{_free_port()}/jobs"
    started = time.monotonic()
    with pytest.raises(StoreConfigError) as info:
        open_store(url)
    message = str(info.value)
    assert time.monotonic() - started < 10
    assert "cannot reach the database" in message
    assert "\n" not in message
    assert SECRET not in message and "cron:***@127.0.0.1" in message
    assert not home.exists() or not any(home.rglob("*")), "a failed open wrote files"


def test_a_missing_database_names_the_store_and_hides_the_password(
    home: Path, pg_server: PostgresServer
) -> None:
    url = _with_password(pg_server.url).rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(StoreConfigError) as info:
        open_store(url)
    message = str(info.value)
    assert "no_such_database" in message and "\n" not in message
    assert SECRET not in message


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql:cron:{SECRET}@localhost/jobs",  # no "//": libpq would echo it whole
        f"postgresql://cron:{SECRET}@localhost/jobs?bogus=1",
        f"postgresql://cron:{SECRET}@localhost:notaport/jobs",
        f"postgresql://cron:{SECRET}@localhost/jobs?pool_max=0",
        f"postgresql://cron:{SECRET}@localhost/jobs?pool_timeout=soon",
    ],
)
def test_a_malformed_url_is_refused_without_connecting(home: Path, url: str) -> None:
    with pytest.raises(StoreConfigError) as info:
        open_store(url)
    message = str(info.value)
    assert "\n" not in message and SECRET not in message, message


def test_without_psycopg_the_error_names_the_extra(home: Path) -> None:
    done = _python(
        "import sys\n"
        "sys.modules['psycopg'] = None\n"
        "from cron.errors import StoreConfigError\n"
        "from cron.stores import open_store\n"
        "try:\n"
        "    open_store('postgresql://localhost/jobs')\n"
        "except StoreConfigError as exc:\n"
        "    print(exc)\n",
        home=home,
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'cronkit[postgres]'" in done.stdout


def test_the_cli_reports_an_unreachable_store_on_one_line(home: Path) -> None:
    env = _env(home)
    env["CRONKIT_STORE"] = f"postgresql://cron:{SECRET}@127.0.0.1:{_free_port()}/jobs"
    done = subprocess.run(
        [sys.executable, "-m", "cron", "store", "info"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "cannot reach the database" in out
    assert SECRET not in out


def test_info_and_url_mask_the_password(home: Path, pg_url: str) -> None:
    s = open_store(_with_password(pg_url))
    try:
        info = s.info()
        assert SECRET not in s.url and SECRET not in json.dumps(info)
        assert info["backend"] == "postgresql"
        assert info["schema_version"] == SCHEMA_VERSION
        assert s.ledger().location == s.url and s.replay_db() is s.ledger()
        assert s.shared is True
    finally:
        s.close()


# -- the schema ----------------------------------------------------------------------


def test_reads_create_nothing_and_the_first_write_creates_the_schema(
    home: Path, empty_url: str
) -> None:
    s = open_store(empty_url)
    try:
        assert s.get("0" * 12) is None and s.scan() == [] and s.count() == 0
        assert s.next_wake() is None and s.find_key("k") is None
        assert s.delete("0" * 12) is False
        assert s.ledger().exists() is False
        with s.ledger().read() as conn:
            assert conn is None
        assert s.info()["schema_version"] is None
        assert not _regclass(empty_url, "cronkit_meta"), "a read created the schema"
        s.insert(make_job())
        assert s.ledger().exists() is True
        for table in (
            "cronkit_meta",
            "cronkit_jobs",
            "executions",
            "job_events",
            "tickers",
            "webhook_nonces",
        ):
            assert _regclass(empty_url, table), table
    finally:
        s.close()


def test_a_newer_schema_is_refused_naming_both_versions(home: Path, pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE cronkit_meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(SchemaVersionError) as info:
        open_store(pg_url)
    assert "99" in str(info.value) and f"({SCHEMA_VERSION})" in str(info.value)
    lazy = PostgresJobStore(pg_url)
    try:
        with pytest.raises(SchemaVersionError):
            lazy.insert(make_job())
    finally:
        lazy.close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM cronkit_jobs").fetchone() == (0,)
        assert conn.execute("SELECT value FROM cronkit_meta").fetchone() == ("99",)


def _create_and_insert(url: str, barrier: Any, results: Any) -> None:
    try:
        barrier.wait(60)
        store = open_store(url)
        try:
            store.insert(make_job())
        finally:
            store.close()
        results.put("ok")
    except BaseException as exc:
        results.put(repr(exc))
        raise


def test_processes_creating_the_schema_at_once_all_succeed(home: Path, empty_url: str) -> None:
    n = 4
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [
        ctx.Process(target=_create_and_insert, args=(empty_url, barrier, results)) for _ in range(n)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
    assert outcomes == ["ok"] * n
    with psycopg.connect(empty_url) as conn:
        assert conn.execute("SELECT count(*) FROM cronkit_jobs").fetchone() == (n,)
        assert conn.execute("SELECT name, value FROM cronkit_meta").fetchall() == [
            ("schema_version", str(SCHEMA_VERSION))
        ]


# -- the claim -----------------------------------------------------------------------


def test_swap_many_skips_a_row_another_connection_holds_without_waiting(
    store: PostgresJobStore, pg_url: str
) -> None:
    a, b = make_job(name="a"), make_job(name="b")
    rev_a, rev_b = store.insert(a).rev, store.insert(b).rev
    result: dict[str, Any] = {}

    def claim() -> None:
        started = time.monotonic()
        result["out"] = store.swap_many(
            [Swap(a["id"], rev_a, _renamed(a, "a2")), Swap(b["id"], rev_b, _renamed(b, "b2"))]
        )
        result["elapsed"] = time.monotonic() - started

    with psycopg.connect(pg_url) as other:
        other.execute("SELECT id FROM cronkit_jobs WHERE id = %s FOR UPDATE", (a["id"],))
        caller = threading.Thread(target=claim)
        caller.start()
        caller.join(5.0)
        blocked = caller.is_alive()
        other.rollback()  # releases a swap_many that did wait, so the test cannot hang
    caller.join(30)
    assert not blocked, "swap_many waited for a row another connection holds"
    out, elapsed = result["out"], result["elapsed"]
    assert elapsed < 1.0, f"swap_many waited {elapsed:.2f}s on a locked row"
    assert [o is not None for o in out] == [False, True]
    got_a, got_b = store.get(a["id"]), store.get(b["id"])
    assert got_a is not None and (got_a.job["name"], got_a.rev) == ("a", rev_a)
    assert got_b is not None and got_b.job["name"] == "b2"


def _row(job_id: str, status: str = "claimed", row_id: str | None = None) -> LedgerRow:
    at = T0.isoformat()
    return LedgerRow(row_id or uuid.uuid4().hex, job_id, status, at, at, "test", "test:1:1", "job")


def test_the_claimed_row_commits_with_the_claim(store: PostgresJobStore, pg_url: str) -> None:
    job = make_job()
    rev = store.insert(job).rev
    claim = _row(job["id"])
    [won] = store.swap_many([Swap(job["id"], rev, _renamed(job, "claimed"), (claim,))])
    assert won is not None
    with psycopg.connect(pg_url) as conn:  # another session sees both, or it would see neither
        assert conn.execute(
            "SELECT rev FROM cronkit_jobs WHERE id = %s", (job["id"],)
        ).fetchone() == (won.rev,)
        assert conn.execute(
            "SELECT status FROM executions WHERE id = %s", (claim.id,)
        ).fetchone() == ("claimed",)


def test_a_ledger_row_that_fails_rolls_the_claim_back(store: PostgresJobStore, pg_url: str) -> None:
    job = make_job()
    rev = store.insert(job).rev
    taken = _row(job["id"], "missed")
    store.write_rows([taken])
    claim = _row(job["id"])
    with pytest.raises(psycopg.errors.UniqueViolation):
        # The second row reuses an id the ledger holds: the whole transaction fails.
        store.swap_many(
            [
                Swap(
                    job["id"],
                    rev,
                    _renamed(job, "claimed"),
                    (claim, _row(job["id"], "missed", taken.id)),
                )
            ]
        )
    got = store.get(job["id"])
    assert got is not None and (got.job["name"], got.rev) == (job["name"], rev)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT id FROM executions").fetchall() == [(taken.id,)]


def test_a_stale_or_foreign_revision_loses(store: PostgresJobStore) -> None:
    job = make_job()
    rev = store.insert(job).rev
    assert store.swap(job["id"], str(rev), job) is None
    assert store.swap(job["id"], True, job) is None
    assert store.delete(job["id"], "1") is False
    assert store.swap_many([Swap(job["id"], None, job)]) == [None]
    assert store.get(job["id"]) is not None


def test_a_duplicate_in_insert_many_keeps_the_jobs_before_it(store: PostgresJobStore) -> None:
    first, second = make_job(key="k1"), make_job(key="k1")
    third = make_job()
    from cron.errors import DuplicateJobError

    with pytest.raises(DuplicateJobError) as info:
        store.insert_many([first, second, third])
    assert info.value.field == "key"
    assert [s.job["id"] for s in store.scan()] == [first["id"]]


def _claim_rounds(url: str, rounds: int, barrier: Any, results: Any) -> None:
    """A node: every round, try to advance every job by one claim, with its ledger row."""
    try:
        store = open_store(url)
        wins: list[tuple[str, int, str]] = []
        barrier.wait(60)
        for _ in range(rounds):
            swaps = []
            for stored in store.scan():
                new = dict(stored.job)
                new["repeat"] = dict(new["repeat"], completed=new["repeat"]["completed"] + 1)
                swaps.append(Swap(stored.job["id"], stored.rev, new, (_row(stored.job["id"]),)))
            for item, won in zip(swaps, store.swap_many(swaps), strict=True):
                if won is not None:
                    wins.append((item.job_id, item.new["repeat"]["completed"], item.rows[0].id))
        store.close()
        results.put(wins)
    except BaseException as exc:
        barrier.abort()
        results.put(repr(exc))
        raise


def test_nodes_claiming_together_win_each_revision_once_with_its_row(
    store: PostgresJobStore, pg_url: str
) -> None:
    nodes, rounds = 4, 25
    made = [make_job() for _ in range(20)]
    store.insert_many(made)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(nodes), ctx.Queue()
    procs = [
        ctx.Process(target=_claim_rounds, args=(pg_url, rounds, barrier, results))
        for _ in range(nodes)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert all(isinstance(o, list) for o in outcomes), outcomes
    wins = [w for o in outcomes for w in o]
    by_job: dict[str, list[int]] = {}
    for job_id, completed, _ in wins:
        by_job.setdefault(job_id, []).append(completed)
    for job in made:
        got = store.get(job["id"])
        assert got is not None
        final = got.job["repeat"]["completed"]
        assert sorted(by_job.get(job["id"], [])) == list(range(1, final + 1)), (
            "each step of a job won by exactly one node"
        )
    with psycopg.connect(pg_url) as conn:
        ledger = {r[0] for r in conn.execute("SELECT id FROM executions WHERE status = 'claimed'")}
    assert ledger == {token for _, _, token in wins}, "a row for every win and no other"


# -- the ledger adapter --------------------------------------------------------------


def test_ledger_rows_index_by_position_and_name(store: PostgresJobStore) -> None:
    ledger = store.ledger()
    assert ledger.dialect == "postgresql"
    with ledger.write() as conn:
        conn.execute(
            "INSERT INTO webhook_nonces (signature, expires_at) VALUES (?, ?)", ("sig-100%", 12.5)
        )
    with ledger.read() as conn:
        assert conn is not None
        row = conn.execute(
            "SELECT signature, expires_at, 'what?' AS q, '5%' AS pct FROM webhook_nonces "
            "WHERE signature LIKE ? AND expires_at > ?",
            ("sig-%", 1.0),
        ).fetchone()
        assert row[0] == row["signature"] == "sig-100%"
        signature, expires, q, pct = row
        assert (expires, q, pct) == (12.5, "what?", "5%")
        assert dict(row) == {"signature": "sig-100%", "expires_at": 12.5, "q": "what?", "pct": "5%"}
        assert row[1:] == (12.5, "what?", "5%")
        with pytest.raises(IndexError):
            row["nope"]
        assert {"id", "job_id", "attempt", "rowid"} <= ledger.columns(conn, "executions")
        assert ledger.columns(conn, "no_such_table") == set()


def test_a_failing_writer_in_a_group_commit_is_rolled_back_alone(
    store: PostgresJobStore,
) -> None:
    ledger = store.ledger()

    def insert(sig: str, fail: bool = False) -> None:
        def fn(conn: Any) -> None:
            conn.execute(
                "INSERT INTO webhook_nonces (signature, expires_at) VALUES (?, ?)", (sig, 1.0)
            )
            if fail:
                conn.execute("SELECT * FROM no_such_table")

        ledger.transact(fn)

    with pytest.raises(psycopg.errors.UndefinedTable):
        insert("bad", fail=True)
    insert("good")
    errors: list[BaseException] = []

    def racer(i: int) -> None:
        try:
            insert(f"t{i}", fail=i % 2 == 1)
        except psycopg.errors.UndefinedTable:
            pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with ledger.read() as conn:
        assert conn is not None
        got = {r["signature"] for r in conn.execute("SELECT signature FROM webhook_nonces")}
    assert got == {"good", "t0", "t2", "t4", "t6"}


def test_the_ledger_api_runs_on_the_store_database(store: PostgresJobStore, pg_url: str) -> None:
    from cron import executions
    from cron.store import set_store

    set_store(store)
    try:
        token = uuid.uuid4().hex
        assert executions.record_claim(token, "j1", scheduled_at=T0, source="tick")
        assert executions.mark_running(token, job_id="j1")
        assert executions.finish(token, status="ok", output_path="/tmp/out")
        event = executions.record_event("j1", status="missed", scheduled_at=T0, source="tick")
        rows = executions.list_executions("j1")
        assert [r["id"] for r in rows] == [event, token] or [r["id"] for r in rows] == [
            token,
            event,
        ]
        assert executions.get_execution(token)["status"] == "ok"  # type: ignore[index]
    finally:
        set_store(None)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM executions").fetchone() == (2,)


# -- change notifications -------------------------------------------------------------


def test_a_change_from_another_process_reaches_a_subscriber_within_a_second(
    store: PostgresJobStore, pg_url: str, home: Path
) -> None:
    heard = threading.Event()
    store.subscribe(heard.set)
    before = store.version()
    assert before is not None
    done = _python(
        "from cron.stores import open_store\n"
        "from cron.testing.store import make_job\n"
        f"s = open_store({pg_url!r}); s.insert(make_job()); s.close()\n",
        home=home,
    )
    assert done.returncode == 0, done.stderr
    assert heard.wait(1.0), "no notification within 1 s of the other process's commit"
    assert store.version() != before


def test_own_writes_move_the_version_at_once_and_only_once(store: PostgresJobStore) -> None:
    calls: list[int] = []
    store.subscribe(lambda: calls.append(1))
    v0 = store.version()
    store.insert(make_job())
    v1 = store.version()
    assert v1 != v0
    time.sleep(0.5)  # our own NOTIFY arrives meanwhile: it must not move the version again
    assert store.version() == v1
    assert calls == [], "this store's own writes are not 'another process'"


# -- the database clock ----------------------------------------------------------------


def _server_now(url: str) -> datetime:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


def test_clock_follows_the_server_clock(store: PostgresJobStore, pg_url: str) -> None:
    ours = store.clock()
    theirs = _server_now(pg_url)
    assert abs((theirs - ours).total_seconds()) < 0.25


def test_clock_follows_the_server_when_this_machines_clock_is_off(
    home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_pgconn, "_wall", lambda: datetime.now(UTC) + timedelta(hours=1))
    s = PostgresJobStore(pg_url)
    try:
        assert abs((_server_now(pg_url) - s.clock()).total_seconds()) < 0.25
    finally:
        s.close()


def test_clock_under_faketime_is_the_database_clock(home: Path, pg_url: str) -> None:
    done = _python(
        "import json\n"
        "from datetime import UTC, datetime\n"
        "from cron.stores import open_store\n"
        f"s = open_store({pg_url!r})\n"
        "print(json.dumps([datetime.now(UTC).timestamp(), s.clock().timestamp()]))\n"
        "s.close()\n",
        home=home,
        prefix=("faketime", "-f", "+3h"),
    )
    assert done.returncode == 0, done.stderr
    local, clock = json.loads(done.stdout.strip().splitlines()[-1])
    server = _server_now(pg_url).timestamp()
    assert abs(local - server - 3 * 3600) < 60, "faketime did not shift the child's clock"
    assert abs(clock - server) < 5


# -- processes, pool ---------------------------------------------------------------------


def test_a_forked_child_neither_uses_nor_closes_the_parents_connections(
    store: PostgresJobStore,
) -> None:
    parent_job = make_job()
    store.insert(parent_job)
    pid = os.fork()
    if pid == 0:  # the child: use the store, then let everything it inherited be collected
        code = 1
        try:
            child_job = make_job()
            store.insert(child_job)
            code = 0 if store.get(child_job["id"]) is not None else 2
            # Whatever a child does to what it inherited — here: closing every connection
            # it can find, as a collector or an atexit hook might — stays in the child.
            for conn in list(_pgproc._CONNECTIONS):
                conn.close()
            store.close()
            store._stale.clear()
            gc.collect()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's pooled connection was used just now and is not re-checked: it must work.
    assert store.get(parent_job["id"]) is not None
    assert store.count() == 2


def test_a_small_pool_serves_many_threads(home: Path, pg_url: str) -> None:
    s = open_store(pg_url + "?pool_max=2&application_name=cronkit-test")
    try:
        job = make_job()
        s.insert(job)
        errors: list[BaseException] = []

        def read() -> None:
            try:
                for _ in range(20):
                    assert s.get(job["id"]) is not None
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=read) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
    finally:
        s.close()


# -- a server that goes away and comes back --------------------------------------------------


def test_a_lost_server_raises_a_typed_error_and_the_store_recovers(home: Path) -> None:
    with PostgresServer(use_env=False) as server:
        url = server.create_database()
        s = open_store(url)
        other = open_store(url)
        try:
            job = make_job()
            rev = s.insert(job).rev
            heard = threading.Event()
            s.subscribe(heard.set)
            before = s.clock()

            server.stop_server("fast")  # sessions end; no commit is lost (unlike a crash)
            for op in (
                lambda: s.get(job["id"]),
                lambda: s.scan(due_by=T0),
                lambda: s.swap(job["id"], rev, _renamed(job, "while down")),
            ):
                started = time.monotonic()
                with pytest.raises(StoreUnavailableError) as info:
                    op()
                assert time.monotonic() - started < 10
                assert isinstance(info.value, ConnectionError)
                assert s.url in str(info.value) and "\n" not in str(info.value)
            assert s.clock() >= before, "the clock keeps its last offset while down"
            deadline = time.monotonic() + 10
            while s.version() is not None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert s.version() is None, "still 'listening' to a stopped server"

            heard.clear()
            server.start_server()
            got = s.get(job["id"])
            assert got is not None and got.rev == rev
            won = s.swap(job["id"], rev, _renamed(job, "after"))
            assert won is not None
            # The listener is back (and said so); a change from elsewhere is heard again.
            assert heard.wait(10), "the listener did not reconnect"
            heard.clear()
            time.sleep(0.2)
            other.insert(make_job())
            assert heard.wait(2), "a change after the restart was not heard"
        finally:
            s.close()
            other.close()
