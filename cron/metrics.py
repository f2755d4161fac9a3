"""Prometheus metrics for the gateway's ``GET /metrics`` (SPEC §14).

Two parts:

* :class:`Metrics` owns a ``prometheus_client.CollectorRegistry`` (never the
  global default one): the counters and histograms of one process, plus
  gauges computed at scrape time from the store and the heartbeat file. The
  webhook app creates one and keeps it on ``app.state.metrics``;
* the ``observe_*`` functions are the hooks the scheduler and the claim call
  where runs start and end and claims are decided. They publish to every live
  :class:`Metrics` subscribed in this process (none: they cost one check), so
  the lower layers never import the web app — the bus points upwards.

Counters are process-local: a restarted gateway starts them at zero, which
Prometheus' ``rate()`` handles. No label carries a job id unless
``cron.metrics.per_job: true`` (ids are unbounded; label sets are series).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from cron.model import EVENT_STATUSES, JobState, RunStatus, is_active, parse_optional_ts

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from cron.ledger_sql import LedgerRow

log = logging.getLogger(__name__)

FIRE_DELAY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
"""Run start − slot: 1 ms .. 5 min (beyond that a run is a catch-up, and +Inf says so)."""
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0)
JOB_STATES = tuple(state.value for state in JobState)
"""Every ``cronkit_jobs{state}`` series, present (as 0) even when no job is in that state."""


class Metrics:
    """One process's cronkit metrics on a registry of its own; :meth:`render` is the scrape."""

    def __init__(self, *, per_job: bool = False, subscribe: bool = True) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.per_job = per_job
        self.registry = CollectorRegistry(auto_describe=True)
        job = ("job_id",) if per_job else ()
        reg = self.registry
        self.runs = Counter(
            "cronkit_runs", "Runs finished, by final status.", ("status", *job), registry=reg
        )
        self.fire_delay = Histogram(
            "cronkit_fire_delay_seconds",
            "Run start minus its scheduled slot.",
            job,
            buckets=FIRE_DELAY_BUCKETS,
            registry=reg,
        )
        self.run_duration = Histogram(
            "cronkit_run_duration_seconds",
            "How long runs took.",
            job,
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.claims = Counter(
            "cronkit_claims",
            "Claims decided, by result (won|lost).",
            ("result", *job),
            registry=reg,
        )
        self.missed = Counter("cronkit_slots_missed", "Slots recorded missed.", job, registry=reg)
        self.skipped = Counter(
            "cronkit_slots_skipped", "Slots recorded skipped (overlap).", job, registry=reg
        )
        self.retries = Counter("cronkit_retries", "Retry attempts started.", job, registry=reg)
        reg.register(_StoreCollector(per_job))
        if subscribe:
            BUS.subscribe(self)

    def _labels(self, metric: Any, job_id: str, **labels: str) -> Any:
        if self.per_job:
            labels["job_id"] = job_id
        return metric.labels(**labels) if labels else metric

    # The hooks (called through BUS) ---------------------------------------------------------

    def run_started(self, job_id: str, delay: float | None) -> None:
        if delay is not None:
            self._labels(self.fire_delay, job_id).observe(max(0.0, delay))

    def run_ended(self, job_id: str, status: str, duration: float | None) -> None:
        self._labels(self.runs, job_id, status=status).inc()
        if duration is not None:
            self._labels(self.run_duration, job_id).observe(max(0.0, duration))

    def claim(self, job_id: str, won: bool) -> None:
        self._labels(self.claims, job_id, result="won" if won else "lost").inc()

    def slot(self, job_id: str, status: str) -> None:
        metric = self.missed if status == RunStatus.MISSED else self.skipped
        self._labels(metric, job_id).inc()

    def retry(self, job_id: str) -> None:
        self._labels(self.retries, job_id).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry (gauges read the store now)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def new_metrics(cfg: dict[str, Any] | None = None) -> Metrics:
    """A subscribed :class:`Metrics` configured by ``cron.metrics.per_job``."""
    from cron.config import cfg_get, read_config
    from cron.errors import ConfigError

    if cfg is None:
        try:
            cfg = read_config()
        except ConfigError:
            cfg = None  # the gateway reports a broken config; metrics keep their defaults
    return Metrics(per_job=bool(cfg_get(cfg, "cron", "metrics", "per_job", default=False)))


def metrics_content_type() -> str:
    from prometheus_client import CONTENT_TYPE_LATEST

    return str(CONTENT_TYPE_LATEST)


class _StoreCollector:
    """Gauges computed at scrape: jobs by state, the next run, the ticker heartbeat."""

    def __init__(self, per_job: bool) -> None:
        self.per_job = per_job

    def describe(self) -> list[Metric]:
        return []  # collected fresh at every scrape; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        from cron.heartbeat import read_ticker_heartbeat
        from cron.store import get_store

        try:
            jobs = [s.job for s in get_store().scan()]
        except Exception:
            log.warning("metrics: the job store cannot be read", exc_info=True)
            jobs = None
        if jobs is not None:
            states = GaugeMetricFamily(
                "cronkit_jobs", "Jobs in the store, by state.", labels=["state"]
            )
            counts = dict.fromkeys(JOB_STATES, 0)
            for job in jobs:
                state = str(job.get("state"))
                counts[state] = counts.get(state, 0) + 1
            for state, n in counts.items():
                states.add_metric([state], n)
            yield states
            nxt = GaugeMetricFamily(
                "cronkit_next_run_timestamp_seconds",
                "Epoch of the earliest next run of an active job"
                + (" (per job)." if self.per_job else "."),
                labels=["job_id"] if self.per_job else None,
            )
            times = [
                (str(j["id"]), parse_optional_ts(j.get("next_run_at")))
                for j in jobs
                if is_active(j)
            ]
            due = [(jid, t.timestamp()) for jid, t in times if t is not None]
            if self.per_job:
                for jid, t in due:
                    nxt.add_metric([jid], t)
            elif due:
                nxt.add_metric([], min(t for _, t in due))
            yield nxt
        beat, _, _ = read_ticker_heartbeat()
        hb = GaugeMetricFamily(
            "cronkit_ticker_heartbeat_timestamp_seconds", "Epoch of the ticker's last heartbeat."
        )
        if beat is not None:
            hb.add_metric([], beat)
        yield hb


class MetricsBus:
    """The live :class:`Metrics` of this process; a hook reaches each of them.

    Weak references: a metrics object (and the app owning it) that goes away
    stops receiving without an explicit unsubscribe. A failing sink is logged
    and never disturbs the run or the claim that called the hook.
    """

    def __init__(self) -> None:
        self._sinks: weakref.WeakSet[Metrics] = weakref.WeakSet()
        self._lock = threading.Lock()

    def subscribe(self, sink: Metrics) -> None:
        with self._lock:
            self._sinks.add(sink)

    def unsubscribe(self, sink: Metrics) -> None:
        with self._lock:
            self._sinks.discard(sink)

    def sinks(self) -> list[Metrics]:
        if not self._sinks:
            return []
        with self._lock:
            return list(self._sinks)

    def emit(self, method: str, *args: Any) -> None:
        for sink in self.sinks():
            try:
                getattr(sink, method)(*args)
            except Exception:
                log.warning("metrics hook %s failed", method, exc_info=True)


BUS = MetricsBus()
"""The process's hook bus (a seam, like ``cron.jobs.add_change_listener``)."""


def observe_run_start(job_id: str, scheduled_at: str | None, started: float) -> None:
    """A run started at epoch ``started`` for slot ``scheduled_at`` (ISO text or None)."""
    if not BUS.sinks():
        return
    slot = parse_optional_ts(scheduled_at)
    BUS.emit("run_started", job_id, started - slot.timestamp() if slot is not None else None)


def observe_run_end(job_id: str, status: str, duration: float | None) -> None:
    BUS.emit("run_ended", job_id, status, duration)


def observe_rows(rows: Sequence[LedgerRow]) -> None:
    """Ledger rows a winning claim write carried: ``claimed`` = a claim won, plus the
    ``missed`` / ``skipped`` slots it recorded."""
    if not rows or not BUS.sinks():
        return
    for row in rows:
        if row.status == RunStatus.CLAIMED:
            BUS.emit("claim", row.job_id, True)
        elif row.status in EVENT_STATUSES:
            BUS.emit("slot", row.job_id, row.status)


def observe_claim_lost(job_id: str) -> None:
    BUS.emit("claim", job_id, False)


def observe_retry(job_id: str) -> None:
    """A retry attempt of a slot is starting (SPEC §13 retries)."""
    BUS.emit("retry", job_id)


__all__ = [
    "BUS",
    "Metrics",
    "MetricsBus",
    "metrics_content_type",
    "new_metrics",
    "observe_claim_lost",
    "observe_retry",
    "observe_rows",
    "observe_run_end",
    "observe_run_start",
]
