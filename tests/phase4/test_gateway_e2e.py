"""``cronkit gateway`` as a real process, fired over real HTTP on an ephemeral loopback port."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cron import executions, jobs, webhook
from tests.phase4._support import (
    count_lines,
    due_job,
    finished_rows,
    fire_body,
    gateway_command,
    gateway_env,
    hand_sign,
    read_pid_file,
    running_gateway,
    start_gateway,
    use_webhook_only_provider,
    wait_for,
)

pytestmark = pytest.mark.slow


def raw_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url + "/cron/fire", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def get_health(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_signed_fire_over_http_runs_once_then_409_then_clean_sigterm(
    home: Path, tmp_path: Path
) -> None:
    use_webhook_only_provider(home)
    count = tmp_path / "count.txt"
    job = due_job(count)
    gw = start_gateway(home)
    try:
        assert gw.info["host"] == "127.0.0.1"
        assert isinstance(gw.info["port"], int) and gw.info["port"] > 0
        assert gw.info["webhook"] is True
        secret = (home / "webhook_secret").read_text().strip()
        body = json.dumps({"job_id": job["id"], "scheduled_at": job["next_run_at"]}).encode()
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Cronkit-Timestamp": ts,
            "X-Cronkit-Signature": hand_sign(secret, ts, body),
        }

        status, reply = raw_post(gw.url, body, headers)
        assert (status, reply["status"]) == (202, "accepted"), reply
        rows = wait_for(lambda: finished_rows(job["id"]))
        assert [(r["status"], r["source"]) for r in rows] == [("ok", "webhook")]
        assert count_lines(count) == 1
        outputs = list((home / "cron" / "output" / job["id"]).iterdir())
        assert len(outputs) == 1
        assert rows[0]["output_path"] == str(outputs[0])

        # The identical request again: refused, nothing runs.
        status, reply = raw_post(gw.url, body, headers)
        assert status == 409
        assert reply == {"status": "not_claimed", "reason": "replayed request"}
        # A fresh, validly signed request for the same slot: refused by the claim.
        again = fire_body(job["id"], scheduled_at=job["next_run_at"], retry=1)
        status, reply = raw_post(
            gw.url,
            again,
            {
                "X-Cronkit-Timestamp": ts,
                "X-Cronkit-Signature": hand_sign(secret, ts, again),
            },
        )
        assert (status, reply["status"]) == (409, "not_claimed")
        time.sleep(0.3)
        assert count_lines(count) == 1
        assert len(executions.list_executions(job["id"])) == 1

        status, health = get_health(gw.url)
        assert (status, health["state"], health["provider"]) == (200, "external", "webhookonly")
    finally:
        code = gw.stop(signal.SIGTERM)
    assert code == 0, gw.stderr()
    assert not (home / "cron" / "gateway.pid").exists()
    log = gw.stderr()
    assert "cronkit gateway started" in log
    assert "provider webhookonly" in log
    assert f"http://127.0.0.1:{gw.info['port']}/cron/fire" in log
    assert "cronkit gateway stopped" in log


def test_post_fire_client_against_a_running_gateway(home: Path, tmp_path: Path) -> None:
    use_webhook_only_provider(home)
    count = tmp_path / "count.txt"
    job = due_job(count)
    with running_gateway(home) as gw:
        assert webhook.gateway_url() == gw.url
        status, reply = webhook.post_fire(job["id"], scheduled_at=job["next_run_at"])
        assert status == 202
        assert reply["job_id"] == job["id"]
        wait_for(lambda: finished_rows(job["id"]))
        status, reply = webhook.post_fire(job["id"], scheduled_at=job["next_run_at"])
        assert status == 409
        assert reply["status"] == "not_claimed"
        status, reply = webhook.post_fire("0123456789ab")
        assert status == 404
    assert count_lines(count) == 1


def test_builtin_ticker_gateway_is_healthy_and_ticks(home: Path, tmp_path: Path) -> None:
    count = tmp_path / "count.txt"
    job = due_job(count)
    with running_gateway(home, "--interval", "1") as gw:
        status, health = wait_for(lambda: (r := get_health(gw.url))[0] == 200 and r)
        assert health["state"] == "running"
        assert health["gateway_pid"] == gw.proc.pid
        # The ticker fires the due job by itself.
        rows = wait_for(lambda: finished_rows(job["id"]))
        assert [(r["status"], r["source"]) for r in rows] == [("ok", "tick")]
        assert count_lines(count) == 1
    assert gw.proc.returncode == 0


def test_sigint_waits_for_a_running_job(home: Path, tmp_path: Path) -> None:
    use_webhook_only_provider(home)
    done = tmp_path / "done.txt"
    job = jobs.create_job(
        "every 60s",
        f"sleep 1.5; echo done >> '{done}'",
        now=datetime.now(UTC) - timedelta(seconds=61),
    )
    gw = start_gateway(home)
    status, _ = webhook.post_fire(job["id"])
    assert status == 202
    wait_for(lambda: any(r["status"] == "running" for r in executions.list_executions(job["id"])))
    started = time.monotonic()
    code = gw.stop(signal.SIGINT)
    assert code == 0, gw.stderr()
    assert time.monotonic() - started >= 0.5  # it waited for the job
    assert count_lines(done) == 1
    assert [r["status"] for r in executions.list_executions(job["id"])] == ["ok"]
    assert not (home / "cron" / "gateway.pid").exists()


def test_stopping_gateway_ends_a_job_that_outlives_the_grace(home: Path, tmp_path: Path) -> None:
    use_webhook_only_provider(home)
    job = jobs.create_job(
        "every 60s",
        "sleep 30",
        now=datetime.now(UTC) - timedelta(seconds=61),
    )
    gw = start_gateway(home, "--grace", "0.5")
    assert webhook.post_fire(job["id"])[0] == 202
    row = wait_for(
        lambda: next(
            (
                r
                for r in executions.list_live_executions()
                if r["status"] == "running" and r["pgid"]
            ),
            None,
        )
    )
    group = executions.process_group_of(row["id"])
    assert group is not None and group.alive()
    started = time.monotonic()
    assert gw.stop(signal.SIGTERM, timeout=15) == 0
    assert time.monotonic() - started < 10
    assert "still running after the 0.5s grace" in gw.stderr()
    assert not (home / "cron" / "gateway.pid").exists()
    # The job's process group did not outlive the gateway; its run is interrupted,
    # its claim released, and nothing is left for recovery.
    assert not group.alive()
    assert [r["status"] for r in executions.list_executions(job["id"])] == ["interrupted"]
    assert jobs.get_job(job["id"])["fire_claim"] is None
    assert jobs.get_job(job["id"])["last_status"] == "interrupted"
    assert executions.recover_interrupted_executions() == 0


def test_second_gateway_on_the_same_home_is_refused(home: Path) -> None:
    use_webhook_only_provider(home)
    with running_gateway(home) as gw:
        second = subprocess.run(
            gateway_command("--port", "0"),
            env=gateway_env(home),
            cwd=gw.stderr_path.parent,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode != 0
        assert str(gw.proc.pid) in second.stderr
        assert "already running" in second.stderr
        assert "Traceback" not in second.stderr
        # The live gateway's pid file is untouched and it still serves.
        assert read_pid_file(home) == gw.info
        status, _ = webhook.post_fire("0123456789ab")
        assert status == 404
    assert gw.proc.returncode == 0


def test_stale_pid_file_does_not_block_a_start(home: Path) -> None:
    use_webhook_only_provider(home)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (home / "cron").mkdir(parents=True, exist_ok=True)
    stale = {"pid": dead.pid, "start": "1", "host": "127.0.0.1", "port": 1, "webhook": True}
    (home / "cron" / "gateway.pid").write_text(json.dumps(stale))
    with running_gateway(home) as gw:
        assert gw.info["pid"] == gw.proc.pid != dead.pid
        assert webhook.post_fire("0123456789ab")[0] == 404
    assert gw.proc.returncode == 0
    assert not (home / "cron" / "gateway.pid").exists()


def test_no_webhook_gateway_serves_nothing(home: Path) -> None:
    use_webhook_only_provider(home)
    with running_gateway(home, "--no-webhook") as gw:
        assert gw.info["webhook"] is False
        assert gw.info["port"] is None
        with pytest.raises(webhook.GatewayNotRunningError, match="no-webhook"):
            webhook.post_fire("0123456789ab")
    assert gw.proc.returncode == 0
