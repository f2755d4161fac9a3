"""An honest answer to "will my jobs fire?" (SPEC §8).

Built from files only — the ticker pid file, the heartbeat files and the
store — so it works from any process, including one that never ran a tick.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from cron import paths
from cron.config import cfg_get, load_config, stale_after
from cron.procinfo import hostname, pid_alive, process_start_time
from cron.scheduler_provider import BUILTIN_ALIASES

STATES = ("running", "failing", "stalled", "unknown", "stopped", "external")
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


def read_ticker_pid() -> dict[str, Any] | None:
    try:
        data = json.loads(paths.ticker_pid_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None


def live_ticker_pid(info: dict[str, Any] | None) -> int | None:
    """The pid in the ticker pid file if that exact process still runs, else None.

    A pid alone is not proof: after a crash the kernel may reuse it, so the
    recorded process start time must match too.
    """
    if info is None:
        return None
    pid = int(info["pid"])
    if info.get("host") not in (None, hostname()):
        return None
    if not pid_alive(pid):
        return None
    recorded = info.get("start")
    if recorded is not None and process_start_time(pid) != recorded:
        return None
    return pid


def _store_summary() -> tuple[int, str | None]:
    from cron.claim import parse_ts
    from cron.store import get_store

    try:
        jobs = [s.job for s in get_store().scan()]
    except Exception:
        return 0, None
    active = [j for j in jobs if j.get("enabled", True) and j.get("state") == "scheduled"]
    times = [t for t in (parse_ts(j.get("next_run_at")) for j in active) if t is not None]
    earliest = min(times).isoformat() if times else None
    return len(active), earliest


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
    """
    from cron.jobs import read_ticker_heartbeat

    if now is None:
        t = time.time()
    elif isinstance(now, datetime):
        t = (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp()
    else:
        t = float(now)
    cfg = cfg if cfg is not None else load_config()
    limit = stale_after(cfg)
    provider = str(cfg_get(cfg, "cron", "provider", default="") or "").strip()
    active, earliest = _store_summary()
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
        "jobs_active": active,
        "next_run_at": earliest,
        "stale_after": limit,
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
            return TickerStatus("external", resolved.name, **common, detail=detail)
        # The configured provider is unusable: the built-in runs, so check it.
        provider = "builtin"
    name = "builtin"
    if pid is None:
        return TickerStatus("stopped", name, **common)
    if beat_age is None:
        return TickerStatus("unknown", name, **common)
    if beat_age > limit:
        return TickerStatus("stalled", name, **common)
    if success_age is None or success_age > limit:
        return TickerStatus("failing", name, **common)
    return TickerStatus("running", name, **common)
