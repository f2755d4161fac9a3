"""``GET /metrics`` (SPEC §14): scraped through Starlette's TestClient after real runs,
parsed with prometheus_client's own parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from cron import jobs, scheduler, webhook
from cron.config import load_config
from cron.errors import ConfigError
from cron.metrics import Metrics
from tests.conftest import write_config

FAMILIES = {
    "cronkit_runs",
    "cronkit_fire_delay_seconds",
    "cronkit_run_duration_seconds",
    "cronkit_claims",
    "cronkit_slots_missed",
    "cronkit_slots_skipped",
    "cronkit_retries",
    "cronkit_jobs",
    "cronkit_next_run_timestamp_seconds",
    "cronkit_ticker_heartbeat_timestamp_seconds",
}


def scrape(client: TestClient) -> dict[str, list[Any]]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(r.text)}


def value(samples: list[Any], name: str, **labels: str) -> float:
    found = [
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (name, labels, samples)
    return float(found[0])


def test_metrics_after_real_runs(home: Path) -> None:
    app = webhook.create_app()
    client = TestClient(app)
    base = datetime.now(UTC)
    ok = jobs.create_job("every 1m", "true", now=base - timedelta(seconds=70))
    bad = jobs.create_job("every 1m", "exit 3", now=base - timedelta(seconds=70))
    late = jobs.create_job("every 1m", "true", catch_up="skip", now=base - timedelta(hours=1))
    stuck = jobs.create_job("every 1m", "true", now=base - timedelta(seconds=70))
    paused = jobs.create_job("every 1h", "true", now=base)
    jobs.pause_job(paused["id"], now=base)
    # A run whose owner died between claim and run: its live claim makes the tick skip.
    assert jobs.claim_job_for_fire(stuck["id"], now=base - timedelta(seconds=5)) is not None
    assert jobs.claim_job_for_fire(stuck["id"], now=base - timedelta(seconds=4)) is None
    jobs.record_ticker_heartbeat(now=base)
    # At base + 60 s: ok and bad fire their base - 10 s slot (within grace), late is an
    # hour behind under catch_up=skip (missed), stuck's base + 50 s slot meets its live
    # claim (skipped).
    assert scheduler.tick(now=base + timedelta(seconds=60)) == 2
    m = scrape(client)
    assert FAMILIES <= set(m)
    assert value(m["cronkit_runs"], "cronkit_runs_total", status="ok") == 1
    assert value(m["cronkit_runs"], "cronkit_runs_total", status="error") == 1
    assert value(m["cronkit_claims"], "cronkit_claims_total", result="won") == 3
    assert value(m["cronkit_claims"], "cronkit_claims_total", result="lost") == 1
    assert value(m["cronkit_slots_missed"], "cronkit_slots_missed_total") == 1
    assert value(m["cronkit_slots_skipped"], "cronkit_slots_skipped_total") == 1
    assert value(m["cronkit_retries"], "cronkit_retries_total") == 0
    # Both runs started (in real time) about 10 s after their base - 10 s slot.
    delay = m["cronkit_fire_delay_seconds"]
    assert value(delay, "cronkit_fire_delay_seconds_count") == 2
    assert value(delay, "cronkit_fire_delay_seconds_bucket", le="5.0") == 0
    assert value(delay, "cronkit_fire_delay_seconds_bucket", le="30.0") == 2
    assert value(m["cronkit_run_duration_seconds"], "cronkit_run_duration_seconds_count") == 2
    states = m["cronkit_jobs"]
    assert value(states, "cronkit_jobs", state="scheduled") == 4
    assert value(states, "cronkit_jobs", state="paused") == 1
    assert value(states, "cronkit_jobs", state="completed") == 0
    nexts = [j["next_run_at"] for j in jobs.list_jobs() if j["state"] == "scheduled"]
    earliest = min(datetime.fromisoformat(t) for t in nexts).timestamp()
    got = value(m["cronkit_next_run_timestamp_seconds"], "cronkit_next_run_timestamp_seconds")
    assert got == pytest.approx(earliest)
    beat = m["cronkit_ticker_heartbeat_timestamp_seconds"]
    assert value(beat, "cronkit_ticker_heartbeat_timestamp_seconds") == pytest.approx(
        base.timestamp(), abs=0.01
    )
    # No label carries a job id by default.
    assert all("job_id" not in s.labels for samples in m.values() for s in samples)
    assert {ok["id"], bad["id"], late["id"]}.isdisjoint(client.get("/metrics").text.split('"'))


def test_per_job_labels_when_configured(home: Path) -> None:
    write_config(home, "cron:\n  metrics:\n    per_job: true\n")
    client = TestClient(webhook.create_app())
    base = datetime.now(UTC)
    a = jobs.create_job("every 1m", "true", now=base - timedelta(seconds=70))
    b = jobs.create_job("every 1m", "true", now=base - timedelta(seconds=70))
    assert scheduler.tick(now=base) == 2
    m = scrape(client)
    for job in (a, b):
        assert value(m["cronkit_runs"], "cronkit_runs_total", status="ok", job_id=job["id"]) == 1
        assert (
            value(m["cronkit_claims"], "cronkit_claims_total", result="won", job_id=job["id"]) == 1
        )
        assert (
            value(
                m["cronkit_next_run_timestamp_seconds"],
                "cronkit_next_run_timestamp_seconds",
                job_id=job["id"],
            )
            > base.timestamp()
        )


def test_two_apps_count_only_what_they_saw_and_own_their_registries(home: Path) -> None:
    first = Metrics()
    base = datetime.now(UTC)
    jobs.create_job("every 1m", "true", now=base - timedelta(seconds=70))
    assert scheduler.tick(now=base) == 1
    second = TestClient(webhook.create_app())
    jobs.create_job("every 1m", "true", now=base - timedelta(seconds=70))
    assert scheduler.tick(now=base) == 1
    assert first.registry.get_sample_value("cronkit_runs_total", {"status": "ok"}) == 2
    assert value(scrape(second)["cronkit_runs"], "cronkit_runs_total", status="ok") == 1


def test_per_job_must_be_a_boolean(home: Path) -> None:
    write_config(home, "cron:\n  metrics:\n    per_job: 'yes'\n")
    with pytest.raises(ConfigError, match=r"cron\.metrics\.per_job"):
        load_config()
    write_config(home, "cron:\n  metrics:\n    by_job: true\n")
    with pytest.raises(ConfigError, match=r"cron\.metrics\.by_job"):
        load_config()
