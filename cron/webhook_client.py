"""The webhook's client: find the running gateway and POST it a signed fire.

``cronkit run --via-webhook`` goes through :func:`post_fire`; the gateway's pid
file (``<home>/cron/gateway.pid``) says where it listens. Callers import these
names from :mod:`cron.webhook`.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

from cron import paths
from cron.errors import CronkitError
from cron.webhook_auth import (
    FIRE_PATH,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    load_or_create_secret,
    sign,
)


class GatewayNotRunningError(CronkitError, ConnectionError):
    """``post_fire`` found no running gateway (or one without the webhook) to post to."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"no cronkit gateway webhook is reachable: {detail}; start one with "
            "'cronkit gateway' (or fire locally with 'cronkit run ID')"
        )


def read_gateway_info() -> dict[str, Any] | None:
    """The live gateway's pid file (``<home>/cron/gateway.pid``) as a dict, or None."""
    from cron.procinfo import hostname, pid_alive, process_start_time

    try:
        data = json.loads(paths.gateway_pid_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("pid"), int):
        return None
    if data.get("hostname") not in (None, hostname()):
        return None
    pid = int(data["pid"])
    if not pid_alive(pid):
        return None
    start = data.get("start")
    if start is not None and process_start_time(pid) != start:
        return None
    return data


def gateway_url() -> str:
    """Base URL of the running gateway's webhook; :class:`GatewayNotRunningError` if none."""
    info = read_gateway_info()
    if info is None:
        raise GatewayNotRunningError(f"no live gateway pid file in {paths.gateway_pid_path()}")
    if not info.get("webhook") or not isinstance(info.get("port"), int):
        raise GatewayNotRunningError(f"the gateway (pid {info['pid']}) runs with --no-webhook")
    host = str(info.get("host") or "127.0.0.1")
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{info['port']}"


def post_fire(
    job_id: str,
    *,
    scheduled_at: datetime | str | None = None,
    url: str | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, Any]]:
    """Sign and POST a fire of ``job_id`` to the running gateway; ``(http_status, json_body)``.

    ``url`` is the gateway's base URL (default: from ``<home>/cron/gateway.pid``).
    A random ``nonce`` field makes every call a distinct signed request, so
    two calls within the same second are not mistaken for a replay. Raises
    :class:`GatewayNotRunningError` when nothing answers.
    """
    base = (url or gateway_url()).rstrip("/")
    payload: dict[str, Any] = {"job_id": job_id, "nonce": secrets.token_hex(8)}
    if scheduled_at is not None:
        payload["scheduled_at"] = (
            scheduled_at.isoformat() if isinstance(scheduled_at, datetime) else scheduled_at
        )
    body = json.dumps(payload).encode("utf-8")
    timestamp = str(int(time.time()))
    request = urllib.request.Request(
        base + FIRE_PATH,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(load_or_create_secret(), timestamp, body),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), _json_or_text(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), _json_or_text(exc.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GatewayNotRunningError(f"{base} did not answer ({reason})") from None


def _json_or_text(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        return {"status": "error", "reason": raw.decode("utf-8", "replace")[:200]}
    return data if isinstance(data, dict) else {"status": "error", "reason": repr(data)[:200]}


__all__ = ["GatewayNotRunningError", "gateway_url", "post_fire", "read_gateway_info"]
