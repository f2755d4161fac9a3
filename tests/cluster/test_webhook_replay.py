"""A signed fire accepted by node A, replayed byte for byte to node B: refused (SPEC §11).

The nodes share one ``webhook_secret`` (each home's file holds it) and the replay
record lives in the shared store. The nodes run a provider that never ticks, so
every run comes from a webhook; and the replay is sent only once the job is due
again, so nothing but the shared replay record can refuse it.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cron import jobs
from cron.claim import parse_ts
from cron.store import get_store
from tests.cluster.harness import Fires, fire_rows, ledger_rows, marker_command, wait_for
from tests.conftest import install_plugin
from tests.phase4._support import WEBHOOK_ONLY_PLUGIN, signed_headers


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url + "/cron/fire", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), json.loads(exc.read())


@pytest.mark.parametrize("store_target", ["postgresql", "sqlite"], indirect=True)
def test_a_fire_replayed_to_another_node_is_refused_and_the_job_runs_once(
    make_cluster,
) -> None:
    cluster = make_cluster(
        ["a", "b", "c"], interval=1.0, claim_ttl=5.0, extra_config="  provider: webhookonly\n"
    )
    secret = secrets.token_hex(32)
    for node in cluster.nodes.values():
        install_plugin(node.home, "webhookonly", WEBHOOK_ONLY_PLUGIN)
        (node.home / "webhook_secret").write_text(secret + "\n", encoding="utf-8")
        (node.home / "webhook_secret").chmod(0o600)
    cluster.start_all(webhook=True)
    job = jobs.create_job(
        "every 2s",
        marker_command(cluster.marker, 0),
        name="hooked",
        now=datetime.now(UTC) - timedelta(seconds=3),
    )

    body = json.dumps({"job_id": job["id"], "nonce": secrets.token_hex(8)}).encode()
    headers = signed_headers(secret, body)
    code, reply = _post(cluster["a"].url, body, headers)
    assert (code, reply.get("status")) == (202, "accepted"), reply

    def finished() -> list[dict[str, Any]]:
        rows = [r for r in fire_rows(ledger_rows()) if r["job_id"] == job["id"]]
        return rows if rows and all(r["status"] == "ok" for r in rows) else []

    wait_for(finished, 20, what="the accepted fire's run finished")

    # Due again, no claim held: a fresh fire would be claimed now. Only the shared
    # replay record stands between the copied request and a second run.
    def due_again() -> bool:
        current = jobs.get_job(job["id"])
        due = parse_ts(current["next_run_at"])
        return current["fire_claim"] is None and due is not None and due <= get_store().clock()

    wait_for(due_again, 10, what="the job due again")
    replies = {name: _post(cluster[name].url, body, headers) for name in ("b", "c", "a")}
    for name, (code, reply) in replies.items():
        assert (code, reply.get("status"), reply.get("reason")) == (
            409,
            "not_claimed",
            "replayed request",
        ), (name, reply)

    time.sleep(1.0)  # a wrongly accepted replay would have started by now
    rows = [r for r in fire_rows(ledger_rows()) if r["job_id"] == job["id"]]
    fires = [f for f in Fires(cluster.marker).read() if f.job_id == job["id"]]
    owner_a = cluster["a"].current.owner
    print(
        f"[cluster] webhook replay on {cluster.store.backend}: accepted by a, "
        f"replays to b/c/a -> {[r[0] for r in replies.values()]}; runs: ledger "
        f"{len(rows)}, marker {len(fires)}"
    )
    assert len(rows) == 1 and len(fires) == 1, (rows, fires)
    assert rows[0]["owner"] == owner_a and rows[0]["source"] == "webhook", rows[0]

    # The control: the same fire, freshly signed (a new nonce), is accepted by b — so the
    # 409s above were the replay record's doing, not the job's state.
    fresh = json.dumps({"job_id": job["id"], "nonce": secrets.token_hex(8)}).encode()
    code, reply = _post(cluster["b"].url, fresh, signed_headers(secret, fresh))
    assert (code, reply.get("status")) == (202, "accepted"), reply
