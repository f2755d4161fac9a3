"""N concurrent, distinct, validly signed fires of one due slot: one 202, the rest 409, one run.

The requests hit one real gateway process over loopback HTTP, sent from N
threads or N processes released together by a barrier. Each request carries
its own ``nonce`` field, so they are distinct signed requests (not replays of
each other) and only the store's compare-and-set can pick the winner.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cron import executions
from tests.phase4._support import (
    Gateway,
    count_lines,
    due_job,
    finished_rows,
    hand_sign,
    start_gateway,
    use_webhook_only_provider,
    wait_for,
)

pytestmark = pytest.mark.slow


def post_signed(url: str, secret: str, job_id: str, slot: str, nonce: int) -> int:
    body = json.dumps({"job_id": job_id, "scheduled_at": slot, "nonce": nonce}).encode()
    ts = str(int(time.time()))
    req = urllib.request.Request(
        url + "/cron/fire",
        data=body,
        method="POST",
        headers={"X-Cronkit-Timestamp": ts, "X-Cronkit-Signature": hand_sign(secret, ts, body)},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code)


def _process_sender(
    url: str, secret: str, job_id: str, slot: str, nonce: int, barrier: Any, out: Any
) -> None:
    barrier.wait(30)
    out.put(post_signed(url, secret, job_id, slot, nonce))


def send_with_threads(n: int, url: str, secret: str, job_id: str, slot: str) -> list[int]:
    barrier = threading.Barrier(n)
    codes: list[int] = []
    lock = threading.Lock()

    def send(i: int) -> None:
        barrier.wait(30)
        code = post_signed(url, secret, job_id, slot, i)
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return codes


def send_with_processes(n: int, url: str, secret: str, job_id: str, slot: str) -> list[int]:
    ctx = multiprocessing.get_context("forkserver")
    barrier, out = ctx.Barrier(n), ctx.Queue()
    procs = [
        ctx.Process(target=_process_sender, args=(url, secret, job_id, slot, i, barrier, out))
        for i in range(n)
    ]
    for p in procs:
        p.start()
    codes = [out.get(timeout=60) for _ in range(n)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    return codes


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Path]]:
    root = tmp_path_factory.mktemp("concurrency")
    home = root / "cronkit-home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRONKIT_HOME", str(home))
        mp.setenv("TZ", "UTC")
        home.mkdir()
        use_webhook_only_provider(home)
        gw = start_gateway(home)
        try:
            yield gw, root
        finally:
            assert gw.stop() == 0, gw.stderr()


@settings(max_examples=10)
@example(n=8, mode="processes")
@example(n=8, mode="threads")
@given(n=st.integers(2, 8), mode=st.sampled_from(["threads", "processes"]))
def test_concurrent_fires_of_one_slot_run_once(
    gateway: tuple[Gateway, Path], n: int, mode: str
) -> None:
    gw, root = gateway
    assert os.environ["CRONKIT_HOME"] == str(gw.home)
    count = root / f"count-{time.monotonic_ns()}.txt"
    job = due_job(count)
    secret = (gw.home / "webhook_secret").read_text().strip()
    args = (gw.url, secret, job["id"], job["next_run_at"])
    codes = send_with_threads(n, *args) if mode == "threads" else send_with_processes(n, *args)

    assert sorted(codes) == [202] + [409] * (n - 1), codes
    rows = wait_for(lambda: finished_rows(job["id"]))
    assert [(r["status"], r["source"], r["scheduled_at"]) for r in rows] == [
        ("ok", "webhook", job["next_run_at"])
    ]
    assert count_lines(count) == 1
    assert len(executions.list_executions(job["id"])) == 1
