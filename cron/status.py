"""An honest answer to "will my jobs fire?" (SPEC §8).

Built from what the ticker leaves behind — its pid file, the heartbeat files,
the store, the ledger and, on a shared store (SPEC §11), the ticker registry —
never by asking the ticker, so it works from any process, including one that
never ran a tick. It writes nothing.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from cron import paths
from cron.config import cfg_get, load_config, stale_after
from cron.heartbeat import live_ticker_pid, read_ticker_pid
from cron.model import RunStatus, format_ts, is_active, parse_optional_ts
from cron.procinfo import hostname, owner_gone
from cron.scheduler_provider import BUILTIN_ALIASES

__all__ = ["TickerStatus", "live_ticker_pid", "read_ticker_pid", "ticker_status"]

FAILING_JOBS_SHOWN = 5
"""``status`` names at most this many failing jobs (and counts the rest)."""
EXIT_CODES = {"running": 0, "external": 0, "failing": 1, "stalled": 1, "stopped": 2, "unknown": 3}


@dataclass(frozen=True)
class TickerStatus:
    state: str
    provider: str
    gateway_pid: int | None
    heartbeat_age: float | None
    success_age: float | None
    last_error: str | None
    jobs_active: int
    next_run_at: str | None
    stale_after: float = 200.0
    detail: str = ""
    store_error: str | None = None
    """Why the job store cannot be read (then nothing can fire), or None."""
    failing_jobs: list[dict[str, Any]] = field(default_factory=list)
    """Up to :data:`FAILING_JOBS_SHOWN` jobs with ``failure_streak >= 1``, worst first:
    ``id``, ``name``, ``failure_streak``, ``last_status``, ``last_error``."""
    failing_jobs_total: int = 0
    runaway_runs: list[dict[str, Any]] = field(default_factory=list)
    """Runs still going past their timeout: ``id``, ``job_id``, ``name``,
    ``started_at``, ``running_for``, ``timeout``, ``owner``."""
    stall: dict[str, Any] | None = None
    """What the last stall or downtime cost, from the audit (:func:`cron.audit.stall_impact`):
    ``from``, ``to`` (None while ongoing), ``slots`` that came due, and what became of them."""
    nodes: list[dict[str, Any]] = field(default_factory=list)
    """On a shared store (SPEC §12): every registered ticker — ``node``, ``host``, ``pid``,
    ``home``, ``provider``, ``state`` (``running`` / ``failing`` as it last reported,
    ``stale``, or ``gone``: a process of this host that provably died, whatever its
    heartbeat's age), ``heartbeat_age``, ``last_error``, ``this`` (the node of this home)."""

    @property
    def healthy(self) -> bool:
        return self.state in ("running", "external")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.state]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["healthy"] = self.healthy
        return out


def _store_error_text(exc: BaseException) -> str:
    from cron.errors import CronkitError

    text = str(exc) if isinstance(exc, CronkitError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


@dataclass(frozen=True)
class _StoreSummary:
    active: int = 0
    earliest: str | None = None
    error: str | None = None
    failing: tuple[dict[str, Any], ...] = ()
    failing_total: int = 0
    timeouts: tuple[tuple[str, str | None, float | None], ...] = ()
    """``(job id, name, timeout)`` of every job, for the runaway check."""


def _store_summary(cfg: dict[str, Any]) -> _StoreSummary:
    from cron.jobs import list_jobs

    try:
        jobs = list_jobs()
    except Exception as exc:
        return _StoreSummary(error=_store_error_text(exc))
    active = [j for j in jobs if is_active(j)]
    times = [t for t in (parse_optional_ts(j.get("next_run_at")) for j in active) if t is not None]
    earliest = format_ts(min(times)) if times else None
    failing = sorted(
        (j for j in jobs if int(j.get("failure_streak") or 0) >= 1),
        key=lambda j: (-int(j.get("failure_streak") or 0), str(j.get("name") or "")),
    )
    shown = tuple(
        {
            "id": j.get("id"),
            "name": j.get("name"),
            "failure_streak": int(j.get("failure_streak") or 0),
            "last_status": j.get("last_status"),
            "last_error": j.get("last_error"),
        }
        for j in failing[:FAILING_JOBS_SHOWN]
    )
    default = float(cfg_get(cfg, "cron", "job_timeout", default=600) or 0)
    timeouts = []
    for j in jobs:
        value = j.get("timeout")
        limit = float(value) if value is not None else default
        timeouts.append((str(j.get("id")), j.get("name"), limit if limit > 0 else None))
    return _StoreSummary(len(active), earliest, None, shown, len(failing), tuple(timeouts))


def _runaway_runs(summary: _StoreSummary, t: float) -> list[dict[str, Any]]:
    """Ledger rows still ``running`` past their job's timeout, owned by a live process.

    Read only if the ledger exists (``status`` writes nothing); a ledger that
    cannot be read hides this list rather than the verdict.
    """
    from cron import executions
    from cron.procinfo import owner_gone
    from cron.store import get_store

    try:
        if not get_store().ledger().exists():
            return []
        rows = executions.list_live_executions()
    except Exception:
        return []
    limits = {job_id: (name, limit) for job_id, name, limit in summary.timeouts}
    out: list[dict[str, Any]] = []
    for row in rows:
        started = parse_optional_ts(row.get("started_at"))
        name, limit = limits.get(row["job_id"], (row.get("job_name"), None))
        if row["status"] != RunStatus.RUNNING or started is None or limit is None:
            continue
        running_for = t - started.timestamp()
        if running_for <= limit or (row.get("owner") and owner_gone(str(row["owner"]))):
            continue
        out.append(
            {
                "id": row["id"],
                "job_id": row["job_id"],
                "name": name,
                "started_at": row["started_at"],
                "running_for": round(running_for, 1),
                "timeout": limit,
                "owner": row.get("owner"),
                "pgid": row.get("pgid"),
            }
        )
    return out


def _nodes(t: float | None, limit: float) -> list[dict[str, Any]]:
    # A registry that cannot be read hides the list, never the verdict.
    try:
        return _cluster_nodes(t, limit)
    except Exception:
        return []


def _stall(t: float, beat: float | None, limit: float) -> dict[str, Any] | None:
    """The audit of the last stall window; a ledger that cannot be read hides it."""
    from cron.audit import stall_impact

    try:
        return stall_impact(now=t, beat=beat, limit=limit)
    except Exception:
        return None


def _cluster_nodes(t: float | None, limit: float) -> list[dict[str, Any]]:
    """The registry of a shared store, judged by heartbeat age on the store's clock; a node
    of this host whose process is gone (``kill -9`` leaves its fresh row) is ``gone``."""
    from cron.registry import list_nodes
    from cron.store import get_store

    store = get_store()
    if not store.shared:
        return []
    now = store.clock() if t is None else datetime.fromtimestamp(t, UTC)
    home = str(paths.home())
    here = hostname()
    out = []
    for n in list_nodes(store):
        age = n.heartbeat_age(now)
        state = "gone" if owner_gone(n.node_id) else "stale" if age > limit else n.state
        out.append(
            {
                "node": n.node_id,
                "host": n.host,
                "pid": n.pid,
                "home": n.home,
                "provider": n.provider,
                "state": state,
                "heartbeat_age": age,
                "last_error": n.last_error,
                "this": n.home == home and n.host == here,
            }
        )
    return out


def ticker_status(
    now: datetime | float | None = None, *, cfg: dict[str, Any] | None = None
) -> TickerStatus:
    """Classify the ticker as running / failing / stalled / unknown / stopped / external.

    - ``stopped``: no live ticker process (pid file absent, pid dead or reused);
    - ``unknown``: a ticker process is alive but no heartbeat was ever written;
    - ``stalled``: heartbeat older than ``stale_after``;
    - ``failing``: heartbeat fresh, last clean tick older than ``stale_after``;
    - ``running``: both fresh;
    - ``external``: a non-built-in provider is configured (heartbeats do not apply).

    A job store that cannot be read makes the verdict ``failing`` whatever the
    heartbeats (nothing can fire until it is fixed); ``store_error`` names why.
    Failing jobs and runs past their timeout are listed but never change the state.

    On a shared store (SPEC §12) every registered node is listed in ``nodes``;
    while at least one of them is healthy (fresh heartbeat, last tick clean)
    the verdict is ``running`` — whatever this home's own ticker is doing.
    """
    from cron.jobs import read_ticker_heartbeat

    given = now is not None
    if now is None:
        t = time.time()
    elif isinstance(now, datetime):
        t = (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp()
    else:
        t = float(now)
    cfg = cfg if cfg is not None else load_config()
    limit = stale_after(cfg)
    provider = str(cfg_get(cfg, "cron", "provider", default="") or "").strip()
    summary = _store_summary(cfg)
    info = read_ticker_pid()
    pid = live_ticker_pid(info)
    beat, success, error = read_ticker_heartbeat()
    beat_age = None if beat is None else max(0.0, t - beat)
    success_age = None if success is None else max(0.0, t - success)
    common: dict[str, Any] = {
        "gateway_pid": pid,
        "heartbeat_age": beat_age,
        "success_age": success_age,
        "last_error": error,
        "jobs_active": summary.active,
        "next_run_at": summary.earliest,
        "stale_after": limit,
        "store_error": summary.error,
        "failing_jobs": list(summary.failing),
        "failing_jobs_total": summary.failing_total,
        "runaway_runs": _runaway_runs(summary, t),
        "stall": _stall(t, beat, limit) if summary.error is None else None,
        "nodes": _nodes(t if given else None, limit) if summary.error is None else [],
    }
    if provider.lower() not in BUILTIN_ALIASES:
        from cron.scheduler_provider import resolve_cron_scheduler

        resolved = resolve_cron_scheduler(cfg)
        if resolved.name != "builtin":
            detail = ""
            describe = getattr(resolved, "status_detail", None)
            if callable(describe):
                try:
                    detail = str(describe())
                except Exception as exc:
                    detail = f"status unavailable: {exc}"
            if summary.error is not None:
                return TickerStatus("failing", resolved.name, **common, detail=detail)
            return TickerStatus("external", resolved.name, **common, detail=detail)
        # The configured provider is unusable: the built-in runs, so check it.
        provider = "builtin"
    name = "builtin"
    if pid is None and summary.error is None and not common["nodes"]:
        return TickerStatus("stopped", name, **common)
    if summary.error is not None:
        return TickerStatus("failing" if pid is not None else "stopped", name, **common)
    if any(n["state"] == "running" for n in common["nodes"]):
        # A cluster fires while any node is healthy; each stale node gets its ✗ line.
        return TickerStatus("running", name, **common)
    if pid is None:
        return TickerStatus("stopped", name, **common)
    if beat_age is None:
        return TickerStatus("unknown", name, **common)
    if beat_age > limit:
        return TickerStatus("stalled", name, **common)
    if success_age is None or success_age > limit:
        return TickerStatus("failing", name, **common)
    return TickerStatus("running", name, **common)
