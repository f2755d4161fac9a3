"""The fire webhook in-process (Starlette TestClient): every status code of SPEC §7.

The job runner passed to ``create_app`` runs ``run_one_job`` synchronously, so
when a 202 comes back the run has happened and can be counted.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from cron import executions, jobs, paths, scheduler, webhook
from cron.procinfo import hostname, process_start_time
from tests.conftest import write_config
from tests.phase4._support import count_lines, due_job, fire_body, hand_sign, signed_headers

FIRE = "/cron/fire"


class Harness:
    def __init__(self, home: Path, tmp_path: Path) -> None:
        self.home = home
        self.count = tmp_path / "count.txt"
        self.ran: list[str] = []
        self.app = webhook.create_app(runner=self._run)
        self.client = TestClient(self.app, raise_server_exceptions=False)
        self.secret = webhook.load_or_create_secret()

    def _run(self, job: dict[str, Any]) -> None:
        self.ran.append(job["id"])
        scheduler.run_one_job(job)

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(FIRE, content=body, headers=headers or {})

    def signed(self, body: bytes, **kw: Any) -> Any:
        return self.post(body, signed_headers(self.secret, body, **kw))


@pytest.fixture
def hx(home: Path, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(home, tmp_path)
    with h.client:
        yield h


def assert_nothing_fired(hx: Harness, job: dict[str, Any] | None = None) -> None:
    assert hx.ran == []
    assert count_lines(hx.count) == 0
    if job is not None:
        assert jobs.get_job(job["id"]) == job
        assert executions.list_executions(job["id"]) == []


# -- the secret and the signature --------------------------------------------------


def test_secret_is_created_once_private_64_hex(home: Path) -> None:
    secret = webhook.load_or_create_secret()
    path = home / "webhook_secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(secret) == 64
    int(secret, 16)
    assert path.read_text().strip() == secret
    assert webhook.load_or_create_secret() == secret


def _secret_in_child(home: str, barrier: Any, out: Any) -> None:
    os.environ["CRONKIT_HOME"] = home
    barrier.wait()
    out.put(webhook.load_or_create_secret())


def test_racing_processes_agree_on_one_secret(home: Path) -> None:
    ctx = multiprocessing.get_context("forkserver")
    n = 6
    barrier, out = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_secret_in_child, args=(str(home), barrier, out)) for _ in range(n)]
    for p in procs:
        p.start()
    secrets_seen = {out.get(timeout=30) for _ in range(n)}
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert len(secrets_seen) == 1
    assert (home / "webhook_secret").read_text().strip() == secrets_seen.pop()
    assert [p.name for p in home.iterdir() if p.name.startswith(".webhook_secret")] == []


def test_a_too_short_secret_is_refused(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "webhook_secret").write_text("short\n")
    with pytest.raises(ValueError, match="webhook secret"):
        webhook.load_or_create_secret()


def test_sign_matches_the_spec_and_verify_is_strict() -> None:
    secret = "ab" * 32
    body = b'{"job_id": "x"}'
    sig = webhook.sign(secret, "1700000000", body)
    assert sig == hand_sign(secret, "1700000000", body)
    # The key is the stripped hex text itself.
    assert webhook.sign(f"  {secret}\n", "1700000000", body) == sig
    assert webhook.verify(secret, "1700000000", body, sig)
    assert not webhook.verify(secret, "1700000001", body, sig)
    assert not webhook.verify(secret, "1700000000", body + b" ", sig)
    assert not webhook.verify("cd" * 32, "1700000000", body, sig)
    assert not webhook.verify(secret, "1700000000", body, sig.removeprefix("sha256="))
    assert not webhook.verify(secret, "1700000000", body, sig.upper())
    assert not webhook.verify(secret, "1700000000", body, "sha256=é")


# -- 202 -------------------------------------------------------------------------------


def test_valid_fire_is_accepted_and_runs_once(hx: Harness) -> None:
    job = due_job(hx.count)
    resp = hx.signed(fire_body(job["id"], scheduled_at=job["next_run_at"]))
    assert resp.status_code == 202, resp.text
    assert resp.json() == {
        "status": "accepted",
        "job_id": job["id"],
        "scheduled_at": job["next_run_at"],
    }
    assert hx.ran == [job["id"]]
    assert count_lines(hx.count) == 1
    [row] = executions.list_executions(job["id"])
    assert (row["status"], row["source"], row["scheduled_at"]) == (
        "ok",
        "webhook",
        job["next_run_at"],
    )


def test_scheduled_at_is_optional(hx: Harness) -> None:
    job = due_job(hx.count)
    resp = hx.signed(fire_body(job["id"]))
    assert resp.status_code == 202, resp.text
    assert resp.json()["scheduled_at"] == job["next_run_at"]
    assert count_lines(hx.count) == 1


def test_exactly_64_kib_is_accepted(hx: Harness) -> None:
    job = due_job(hx.count)
    base = fire_body(job["id"], pad="")
    body = fire_body(job["id"], pad="x" * (webhook.MAX_BODY - len(base)))
    assert len(body) == webhook.MAX_BODY
    assert hx.signed(body).status_code == 202
    assert count_lines(hx.count) == 1


# -- 401 ----------------------------------------------------------------------------


def _headers_variants(secret: str, body: bytes) -> dict[str, dict[str, str]]:
    now = int(time.time())
    good = signed_headers(secret, body)
    ts = good["X-Cronkit-Timestamp"]
    return {
        "wrong secret": signed_headers("f" * 64, body),
        "no headers": {"Content-Type": "application/json"},
        "no timestamp": {"X-Cronkit-Signature": good["X-Cronkit-Signature"]},
        "no signature": {"X-Cronkit-Timestamp": ts},
        "timestamp not a number": {**good, "X-Cronkit-Timestamp": "yesterday"},
        "negative timestamp": signed_headers(secret, body, timestamp="-5"),
        "exponent timestamp": signed_headers(secret, body, timestamp=f"{now / 1e9:.9f}e9"),
        "timestamp too old": signed_headers(secret, body, timestamp=now - 301),
        # A minute past the 300 s skew, not one second: the variants are sent one after
        # another on a busy machine, and real seconds pass before the last is checked.
        "timestamp too far ahead": signed_headers(secret, body, timestamp=now + 360),
        "signature without prefix": {
            **good,
            "X-Cronkit-Signature": good["X-Cronkit-Signature"].removeprefix("sha256="),
        },
        "sha1 prefix": {
            **good,
            "X-Cronkit-Signature": "sha1=" + good["X-Cronkit-Signature"][7:],
        },
        "uppercase hex": {
            **good,
            "X-Cronkit-Signature": "sha256=" + good["X-Cronkit-Signature"][7:].upper(),
        },
        "truncated signature": {**good, "X-Cronkit-Signature": good["X-Cronkit-Signature"][:-2]},
        "signature of another body": {
            **good,
            "X-Cronkit-Signature": hand_sign(secret, ts, body + b" "),
        },
        "timestamp changed after signing": {**good, "X-Cronkit-Timestamp": str(int(ts) - 1)},
    }


@pytest.mark.parametrize("variant", list(_headers_variants("0" * 64, b"{}")))
def test_unauthenticated_requests_get_401_and_fire_nothing(hx: Harness, variant: str) -> None:
    job = due_job(hx.count)
    body = fire_body(job["id"])
    resp = hx.post(body, _headers_variants(hx.secret, body)[variant])
    assert resp.status_code == 401, resp.text
    assert resp.json()["status"] == "unauthorized"
    assert job["id"] not in resp.text  # nothing about the job before auth
    assert_nothing_fired(hx, job)


def test_unknown_job_without_valid_signature_is_401_not_404(hx: Harness) -> None:
    body = fire_body("0123456789ab")
    assert hx.post(body, signed_headers("f" * 64, body)).status_code == 401


def test_max_skew_comes_from_config(hx: Harness) -> None:
    write_config(hx.home, "cron:\n  webhook:\n    max_skew: 10\n")
    job = due_job(hx.count)
    body = fire_body(job["id"])
    now = int(time.time())
    assert hx.signed(body, timestamp=now - 20).status_code == 401
    assert hx.signed(body, timestamp=now + 20).status_code == 401
    assert_nothing_fired(hx, job)
    assert hx.signed(body, timestamp=now - 5).status_code == 202
    assert count_lines(hx.count) == 1


# -- 413 ----------------------------------------------------------------------------


def test_oversized_body_is_413(hx: Harness) -> None:
    job = due_job(hx.count)
    base = fire_body(job["id"], pad="")
    body = fire_body(job["id"], pad="x" * (webhook.MAX_BODY + 1 - len(base)))
    assert len(body) == webhook.MAX_BODY + 1
    resp = hx.signed(body)
    assert resp.status_code == 413
    assert job["id"] not in resp.text
    assert_nothing_fired(hx, job)


def test_oversized_body_is_refused_before_its_signature_is_checked(hx: Harness) -> None:
    body = b"x" * (webhook.MAX_BODY * 4)
    headers = signed_headers("f" * 64, body)  # well-formed, but wrong secret
    assert hx.post(body, headers).status_code == 413


def test_oversized_streamed_body_without_content_length_is_413(hx: Harness) -> None:
    job = due_job(hx.count)
    chunk = b" " * 4096
    chunks_sent: list[int] = []

    def stream() -> Iterator[bytes]:
        for i in range(64):  # 256 KiB of whitespace, valid JSON padding if it were read
            chunks_sent.append(i)
            yield chunk

    body_prefix = fire_body(job["id"])
    headers = signed_headers(hx.secret, body_prefix)

    def gen() -> Iterator[bytes]:
        yield body_prefix
        yield from stream()

    resp = hx.client.post(FIRE, content=gen(), headers=headers)
    assert resp.status_code == 413
    assert_nothing_fired(hx, job)


# -- 400 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[1, 2]",
        b'"job"',
        b"{}",
        b'{"job_id": 42}',
        b'{"job_id": ""}',
        b'{"job_id": null}',
        b'{"job_id": ["a"]}',
        b'{"job_id": "JOB", "scheduled_at": "tomorrow"}',
        b'{"job_id": "JOB", "scheduled_at": 1700000000}',
        b'{"job_id": "JOB", "scheduled_at": {"a": 1}}',
        b"[" * 50000,
    ],
)
def test_malformed_bodies_are_400(hx: Harness, body: bytes) -> None:
    job = due_job(hx.count)
    body = body.replace(b"JOB", job["id"].encode())
    resp = hx.signed(body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["status"] == "bad_request"
    assert_nothing_fired(hx, job)


# -- 404 ----------------------------------------------------------------------------


def test_unknown_job_is_404(hx: Harness) -> None:
    job = due_job(hx.count)
    resp = hx.signed(fire_body("0123456789ab"))
    assert resp.status_code == 404
    assert resp.json()["status"] == "not_found"
    assert_nothing_fired(hx, job)


# -- 409 ----------------------------------------------------------------------------


def test_paused_job_is_409(hx: Harness) -> None:
    job = due_job(hx.count)
    paused = jobs.pause_job(job["id"])
    resp = hx.signed(fire_body(job["id"]))
    assert resp.status_code == 409
    assert resp.json() == {"status": "not_claimed", "reason": "job is paused"}
    assert_nothing_fired(hx, paused)


def test_not_yet_due_job_is_409(hx: Harness) -> None:
    job = jobs.create_job("every 1h", f"echo fired >> '{hx.count}'")
    resp = hx.signed(fire_body(job["id"]))
    assert resp.status_code == 409
    assert resp.json()["status"] == "not_claimed"
    assert resp.json()["reason"].startswith("not due until")
    assert_nothing_fired(hx, job)


def test_future_slot_is_409(hx: Harness) -> None:
    job = due_job(hx.count)
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    resp = hx.signed(fire_body(job["id"], scheduled_at=later))
    assert resp.status_code == 409
    assert "in the future" in resp.json()["reason"]
    assert_nothing_fired(hx, job)


def test_duplicate_delivery_for_a_fired_slot_is_409(hx: Harness) -> None:
    job = due_job(hx.count)
    slot = job["next_run_at"]
    assert hx.signed(fire_body(job["id"], scheduled_at=slot, delivery=1)).status_code == 202
    # A distinct, validly signed delivery of the same slot (a retrying sender).
    resp = hx.signed(fire_body(job["id"], scheduled_at=slot, delivery=2))
    assert resp.status_code == 409
    assert resp.json()["status"] == "not_claimed"
    assert resp.json()["reason"].startswith("not due until")
    # Even once the job is due again, a late duplicate of the old slot is refused.
    jobs.update_job(job["id"], schedule="every 60s", now=datetime.now(UTC) - timedelta(seconds=61))
    resp = hx.signed(fire_body(job["id"], scheduled_at=slot, delivery=3))
    assert resp.status_code == 409
    assert "already fired or superseded" in resp.json()["reason"]
    assert hx.ran == [job["id"]]
    assert count_lines(hx.count) == 1
    assert len(executions.list_executions(job["id"])) == 1


def test_replayed_request_is_409_and_never_runs_twice(hx: Harness) -> None:
    job = due_job(hx.count)
    body = fire_body(job["id"])  # no slot: each fresh request would claim the current one
    headers = signed_headers(hx.secret, body)
    assert hx.post(body, headers).status_code == 202
    # Make the job due again, so only replay protection can refuse the copy.
    jobs.update_job(job["id"], schedule="every 60s", now=datetime.now(UTC) - timedelta(seconds=61))
    resp = hx.post(body, headers)
    assert resp.status_code == 409
    assert resp.json() == {"status": "not_claimed", "reason": "replayed request"}
    assert hx.ran == [job["id"]]
    assert count_lines(hx.count) == 1
    # The same request against a new app (a restarted gateway) is still a replay.
    other = TestClient(webhook.create_app(runner=hx._run))
    assert other.post(FIRE, content=body, headers=headers).json()["reason"] == "replayed request"
    assert count_lines(hx.count) == 1
    # A freshly signed request for the now-due slot is not a replay.
    assert hx.signed(fire_body(job["id"], n=2)).status_code == 202
    assert count_lines(hx.count) == 2


def test_replay_memory_expires_after_twice_the_skew(home: Path) -> None:
    assert webhook.remember_signature("d1", ttl=600, now=1000.0) is True
    assert webhook.remember_signature("d1", ttl=600, now=1599.0) is False
    assert webhook.remember_signature("d1", ttl=600, now=1601.0) is True


@pytest.mark.usefixtures("file_store")
def test_the_replay_record_file_is_private(home: Path) -> None:
    """About the replay record's SQLite file (its mode): a file store's."""
    assert webhook.remember_signature("d1", ttl=600, now=1000.0) is True
    assert stat.S_IMODE(webhook.nonces_path().stat().st_mode) == 0o600


# -- shutdown, faults, health -----------------------------------------------------------


def test_stopping_gateway_refuses_fires_with_503(hx: Harness) -> None:
    job = due_job(hx.count)
    hx.app.state.stopping = True
    resp = hx.signed(fire_body(job["id"]))
    assert resp.status_code == 503
    assert_nothing_fired(hx, job)


def test_a_failing_runner_is_500_and_releases_the_claim(home: Path, tmp_path: Path) -> None:
    def broken(job: dict[str, Any]) -> None:
        raise RuntimeError("cannot start threads")

    client = TestClient(webhook.create_app(runner=broken), raise_server_exceptions=False)
    job = due_job(tmp_path / "count.txt")
    body = fire_body(job["id"])
    headers = signed_headers(webhook.load_or_create_secret(), body)
    resp = client.post(FIRE, content=body, headers=headers)
    assert resp.status_code == 500
    after = jobs.get_job(job["id"])
    assert after is not None and after["fire_claim"] is None
    [row] = executions.list_executions(job["id"])
    assert row["status"] == "skipped"


def test_default_runner_runs_in_the_background(home: Path, tmp_path: Path) -> None:
    count = tmp_path / "count.txt"
    job = jobs.create_job(
        "every 60s",
        f"sleep 0.5; echo fired >> '{count}'",
        now=datetime.now(UTC) - timedelta(seconds=61),
    )
    client = TestClient(webhook.create_app())
    body = fire_body(job["id"])
    started = time.monotonic()
    headers = signed_headers(webhook.load_or_create_secret(), body)
    resp = client.post(FIRE, content=body, headers=headers)
    assert resp.status_code == 202
    assert time.monotonic() - started < 0.5  # answered before the job finished
    assert scheduler.wait_for_running(10)
    assert scheduler.running_jobs() == 0
    assert count_lines(count) == 1
    assert [r["status"] for r in executions.list_executions(job["id"])] == ["ok"]


def test_healthz_is_503_when_no_ticker_runs(hx: Harness) -> None:
    resp = hx.client.get("/healthz")
    assert resp.status_code == 503
    assert resp.json()["state"] == "stopped"
    assert resp.json()["healthy"] is False


def test_healthz_is_200_with_a_live_ticker(hx: Harness) -> None:
    pid = os.getpid()
    paths.cron_dir(create=True)
    paths.ticker_pid_path().write_text(
        json.dumps(
            {
                "pid": pid,
                "start": process_start_time(pid),
                "host": hostname(),
                "provider": "builtin",
            }
        )
    )
    jobs.record_ticker_heartbeat(success=True)
    resp = hx.client.get("/healthz")
    assert resp.status_code == 200, resp.text
    assert resp.json()["state"] == "running"
    assert resp.json()["gateway_pid"] == pid


# -- no 5xx, nothing fired, for any input --------------------------------------------------


@settings(max_examples=40)
@given(
    body=st.one_of(
        st.binary(max_size=256),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(
                    st.sampled_from(["job_id", "scheduled_at", "x"]), inner, max_size=3
                )
            ),
            max_leaves=8,
        ).map(lambda v: json.dumps(v).encode()),
    ),
    sign_it=st.booleans(),
    ts=st.one_of(st.none(), st.text(max_size=12), st.integers(-(10**10), 10**12).map(str)),
)
def test_arbitrary_input_never_5xx_and_fires_nothing(
    home: Path, tmp_path: Path, body: bytes, sign_it: bool, ts: str | None
) -> None:
    h = Harness(home, tmp_path)
    headers: dict[str, str] = {}
    if ts is not None and ts.isascii() and ts.isprintable():
        headers["X-Cronkit-Timestamp"] = ts
        if sign_it:
            headers["X-Cronkit-Signature"] = hand_sign(h.secret, ts, body)
    elif sign_it:
        headers = signed_headers(h.secret, body)
    resp = h.post(body, headers)
    assert resp.status_code in (400, 401, 404), resp.text
    assert h.ran == []


def test_post_fire_without_a_gateway_is_a_clear_error(home: Path) -> None:
    with pytest.raises(webhook.GatewayNotRunningError, match="no cronkit gateway") as info:
        webhook.post_fire("0123456789ab")
    assert isinstance(info.value, ConnectionError)
    assert "\n" not in str(info.value)


def test_post_fire_to_a_dead_url_is_a_clear_error(home: Path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(webhook.GatewayNotRunningError, match="did not answer"):
        webhook.post_fire("0123456789ab", url=f"http://127.0.0.1:{port}", timeout=2)


def test_two_threads_replaying_one_request_fire_once(hx: Harness) -> None:
    job = due_job(hx.count)
    body = fire_body(job["id"])
    headers = signed_headers(hx.secret, body)
    barrier = threading.Barrier(4)
    codes: list[int] = []

    def send() -> None:
        barrier.wait()
        codes.append(hx.post(body, headers).status_code)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(codes) == [202, 409, 409, 409]
    assert count_lines(hx.count) == 1
