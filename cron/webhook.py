"""The inbound fire webhook (SPEC §7): ``POST /cron/fire`` and ``GET /healthz``.

An outside scheduler (a cloud cron, a CI job, ``cronkit run --via-webhook``)
fires a job by POSTing ``{"job_id": "...", "scheduled_at": "<iso>"}`` with two
headers::

    X-Cronkit-Timestamp: <epoch seconds>
    X-Cronkit-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

The secret is ``<home>/webhook_secret`` (64 hex characters, ``0600``, created on
first need); the HMAC key is that text, whitespace stripped, UTF-8 encoded.

Checks, in this order — the cheap ones first, and nothing about any job is
looked at before the signature holds:

1. gateway shutting down → 503 (no fire is accepted once SIGTERM arrived);
2. missing/malformed timestamp, timestamp more than ``cron.webhook.max_skew``
   seconds in the past **or** the future, missing/malformed signature → 401;
3. body over 64 KiB → 413. An oversized body is refused *before* its
   signature is checked: verifying it would mean buffering it, and a
   413 reveals nothing about jobs. At most 64 KiB + 1 bytes are ever read;
   a ``Content-Length`` over the limit is refused without reading at all;
4. signature mismatch (compared in constant time) → 401;
5. not JSON / not an object / no string ``job_id`` / bad ``scheduled_at`` → 400;
6. the same signed request seen before (replay; remembered across gateway
   processes in ``<home>/cron/webhook_nonces.db``) → 409 ``replayed request``;
7. unknown job → 404;
8. the claim (``claim_job_for_fire_ex``, source ``webhook``) lost → 409
   ``{"status": "not_claimed", "reason": ...}`` (duplicate slot, not due,
   paused, a run still in progress ...);
9. won → 202 ``{"status": "accepted", ...}``; the job runs through
   ``run_one_job`` on the job pool (``cron.max_parallel_jobs``, shared with the ticker).

Nothing is fired by a request that does not get a 202. Malformed input never
yields a 5xx; a 500 means a genuine server fault (e.g. an unreadable store).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cron import paths
from cron.config import cfg_get, read_config
from cron.errors import ConfigError, CronkitError, ScheduleError
from cron.groupcommit import GroupCommit, Pending
from cron.ledgerdb import SqliteLedger
from cron.metrics import Metrics, metrics_content_type, new_metrics

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-Cronkit-Timestamp"
SIGNATURE_HEADER = "X-Cronkit-Signature"
SIGNATURE_PREFIX = "sha256="
FIRE_PATH = "/cron/fire"
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
MAX_BODY = 64 * 1024
"""Largest accepted request body, in bytes."""
MIN_SECRET_LENGTH = 32
"""A shorter secret could be brute-forced offline from one captured request."""

_TIMESTAMP_RE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,9})?$")
_SIGNATURE_RE = re.compile(r"^sha256=[0-9a-f]{64}$")

Job = dict[str, Any]
Runner = Callable[[Job], object]
"""Runs one claimed job (the dict carries its ``fire_claim``); should return promptly."""


class GatewayNotRunningError(CronkitError, ConnectionError):
    """``post_fire`` found no running gateway (or one without the webhook) to post to."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"no cronkit gateway webhook is reachable: {detail}; start one with "
                         "'cronkit gateway' (or fire locally with 'cronkit run ID')")


# -- the secret and the signature ----------------------------------------------


def _read_secret(path: os.PathLike[str] | str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read().strip()
    except FileNotFoundError:
        return None
    if len(text) < MIN_SECRET_LENGTH:
        raise ConfigError(
            str(path),
            f"the webhook secret is {len(text)} characters long (at least "
            f"{MIN_SECRET_LENGTH} needed); delete the file to have a new one generated",
        )
    return text


def load_or_create_secret() -> str:
    """The webhook secret from ``<home>/webhook_secret``, creating it (0600) if missing.

    A new secret is ``secrets.token_hex(32)``. It is written to a private temp
    file and hard-linked into place, which fails if the name exists — the
    ``O_EXCL`` guarantee with the content already complete — so two processes
    racing here agree on one secret and no reader ever sees a half-written
    file. Returns the stripped text (the HMAC key, UTF-8 encoded).
    """
    path = paths.webhook_secret_path()
    existing = _read_secret(path)
    if existing is not None:
        return existing
    paths.ensure_dir(path.parent)
    fresh = secrets.token_hex(32)
    fd, tmp = tempfile.mkstemp(prefix=".webhook_secret.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), paths.FILE_MODE)
            fh.write(fresh + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race; use its secret
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            _create_exclusive(path, fresh)  # a file system without hard links
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    winner = _read_secret(path)
    if winner is None:  # pragma: no cover - removed between link and read
        raise ConfigError(str(path), "the webhook secret vanished while being created")
    if winner == fresh:
        log.info("created the webhook secret %s", path)
    return winner


def _create_exclusive(path: os.PathLike[str] | str, secret: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, paths.FILE_MODE)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _digest(secret: str, timestamp: str, body: bytes) -> str:
    key = secret.strip().encode("utf-8")
    message = timestamp.encode("utf-8") + b"." + body
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``"sha256=<hex HMAC-SHA256(secret, '<timestamp>.<body>')>"`` — the signature header."""
    return SIGNATURE_PREFIX + _digest(secret, timestamp, body)


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """True if ``signature`` is the signature of ``timestamp`` and ``body``; constant time."""
    expected = sign(secret, timestamp, body).encode("ascii")
    given = signature.strip().encode("utf-8", "replace")
    return hmac.compare_digest(expected, given)


def _parse_timestamp(raw: str | None) -> float | None:
    if raw is None or not _TIMESTAMP_RE.match(raw.strip()):
        return None
    return float(raw.strip())


def _max_skew() -> float:
    return float(cfg_get(read_config(), "cron", "webhook", "max_skew", default=300))


# -- replay protection ----------------------------------------------------------


def nonces_path() -> Path:
    """Where signatures of accepted requests are kept, for replay refusal (a SQLite file).

    ``<home>/cron/webhook_nonces.db`` beside ``jobs.json``; the database file of
    a SQLite store. A store whose replay record is not a file raises
    ``NotImplementedError`` (PostgreSQL keeps it in its database).
    """
    from cron.store import get_store

    db = get_store().replay_db()
    if not isinstance(db, SqliteLedger):
        raise NotImplementedError(f"the replay record is in {db.location}, not a file")
    return db.path


@dataclass
class _NonceRequest(Pending):
    digest: str
    at: float
    ttl: float
    fresh: bool = False


def _write_nonces(batch: list[_NonceRequest]) -> None:
    """One transaction for the signatures of concurrent requests (one fsync, not N)."""
    from cron.store import get_store

    with get_store().replay_db().write() as conn:
        oldest = min(r.at for r in batch)
        conn.execute("DELETE FROM webhook_nonces WHERE expires_at < ?", (oldest,))
        for req in batch:
            # A signature recorded and not yet expired is a replay. The insert is
            # the compare-and-set: of racing nodes exactly one inserts or updates
            # an expired row; a live row is left alone (0 rows) and means replay.
            row = conn.execute(
                "INSERT INTO webhook_nonces (signature, expires_at) VALUES (?, ?) "
                "ON CONFLICT (signature) DO UPDATE SET expires_at = excluded.expires_at "
                "WHERE webhook_nonces.expires_at < ? RETURNING signature",
                (req.digest, req.at + req.ttl, req.at),
            ).fetchone()
            req.fresh = row is not None


_nonces: GroupCommit[_NonceRequest] = GroupCommit(_write_nonces)


def remember_signature(digest: str, *, ttl: float, now: float | None = None) -> bool:
    """Record an accepted request's signature; False if it was already recorded (a replay).

    Recording is a compare-and-set in one SQLite transaction, so of any number
    of requests — threads or processes — carrying the same signature exactly
    one gets True. Entries expire after ``ttl`` seconds (``2 × max_skew``: by
    then the timestamp check alone refuses it). Concurrent calls in this
    process share one transaction (group commit).
    """
    at = time.time() if now is None else now
    return _nonces.submit(_NonceRequest(digest, at, ttl)).fresh


# -- running accepted fires -------------------------------------------------------

def default_runner(job: Job) -> None:
    """Queue ``run_one_job(job)`` on the process's job pool and return at once.

    The pool is the ticker's (``cron.scheduler.dispatch``): webhook fires and
    ticks together stay within ``cron.max_parallel_jobs``, a queued fire keeps
    its claim alive, and the gateway's shutdown grace waits for both
    (``scheduler.wait_for_running``).
    """
    from cron import scheduler

    scheduler.dispatch([job])


def _reply(code: int, /, **body: Any) -> JSONResponse:
    return JSONResponse(body, status_code=code)


def _unauthorized(reason: str) -> JSONResponse:
    return _reply(401, status="unauthorized", reason=reason)


def _bad_request(reason: str) -> JSONResponse:
    return _reply(400, status="bad_request", reason=reason)


def _too_large() -> JSONResponse:
    return _reply(413, status="too_large", reason=f"request body is larger than {MAX_BODY} bytes")


async def _read_body(request: Request) -> bytes | None:
    """The raw body, or None once it exceeds :data:`MAX_BODY` (at most one byte more is kept)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > MAX_BODY:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_fire(body: bytes) -> tuple[str, datetime | None] | str:
    """``(job_id, scheduled_at)`` from a verified body, or the 400 reason."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return "body is not valid JSON"
    if not isinstance(data, dict):
        return "body must be a JSON object"
    job_id = data.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        return "'job_id' must be a non-empty string"
    raw_slot = data.get("scheduled_at")
    if raw_slot is None:
        return job_id, None
    if not isinstance(raw_slot, str):
        return "'scheduled_at' must be an ISO-8601 string"
    from cron.schedule import parse_instant

    try:
        return job_id, parse_instant(raw_slot)
    except (ScheduleError, ValueError, OverflowError):
        return f"'scheduled_at' is not an ISO-8601 timestamp: {raw_slot[:64]!r}"


def _claim_and_dispatch(
    job_id: str, slot: datetime | None, digest: str, ttl: float, runner: Runner
) -> JSONResponse:
    """Steps 6–9 of the module docstring (blocking: runs in the thread pool)."""

    if not remember_signature(digest, ttl=ttl):
        return _reply(409, status="not_claimed", reason="replayed request")
    # The claim reads the job: it is also the lookup for 404.
    from cron.claim import ClaimReason
    from cron.scheduler import REMOVED_BEFORE_RUN, fire_job, release_claim

    fired = fire_job(job_id, scheduled_at=slot, source="webhook")
    outcome = fired.outcome
    if fired.removed:
        return _reply(409, status="not_claimed", reason=REMOVED_BEFORE_RUN)
    job, token = fired.job, outcome.token
    if job is None or token is None:
        if outcome.code is ClaimReason.NO_SUCH_JOB:
            return _reply(404, status="not_found", reason=f"no job with id {job_id!r}")
        return _reply(409, status="not_claimed", reason=outcome.reason)
    try:
        runner(job)
    except Exception as exc:
        release_claim(job_id, token, f"could not start the run: {type(exc).__name__}: {exc}")
        raise
    log.info("webhook fired job %s for slot %s", job_id, outcome.scheduled_at)
    return _reply(202, status="accepted", job_id=job_id, scheduled_at=outcome.scheduled_at)


def _authenticate_and_fire(
    raw_ts: str, ts: float, signature: str, body: bytes | None, runner: Runner
) -> JSONResponse:
    """The skew check of step 2, then steps 3–9, in that order (blocking: the thread pool).

    ``body`` is None when it exceeded :data:`MAX_BODY`; the timestamp is still
    checked first, so a stale request is a 401 whatever its size.
    """
    try:
        max_skew, secret = _max_skew(), load_or_create_secret()
    except Exception:
        log.exception("webhook: cannot load the config or the webhook secret")
        return _reply(500, status="error", reason="server misconfigured; see the gateway log")
    if abs(time.time() - ts) > max_skew:
        return _unauthorized(f"timestamp is more than {max_skew:g}s away from server time")
    if body is None:
        return _too_large()
    if not verify(secret, raw_ts, body, signature):
        return _unauthorized("signature mismatch")
    # Authenticated from here on: job information may be revealed.
    parsed = _parse_fire(body)
    if isinstance(parsed, str):
        return _bad_request(parsed)
    job_id, slot = parsed
    digest = _digest(secret, raw_ts, body)
    try:
        return _claim_and_dispatch(job_id, slot, digest, 2 * max_skew, runner)
    except Exception:
        log.exception("webhook: firing job %s failed", job_id)
        return _reply(500, status="error", reason="internal error; see the gateway log")


def create_app(*, runner: Runner | None = None, metrics: Metrics | None = None) -> Starlette:
    """The webhook ASGI app. ``runner`` runs an accepted job (default: the job pool).

    ``app.state.stopping = True`` makes every new fire a 503 (set by the
    gateway on SIGTERM, so shutdown stops accepting fires before it waits).
    ``GET /metrics`` serves ``app.state.metrics`` (``metrics``, default a new
    :class:`cron.metrics.Metrics` subscribed to this process's runs and claims).
    """
    run = runner if runner is not None else default_runner

    async def fire(request: Request) -> JSONResponse:
        if request.app.state.stopping:
            return _reply(503, status="unavailable", reason="the gateway is shutting down")
        raw_ts = request.headers.get(TIMESTAMP_HEADER)
        ts = _parse_timestamp(raw_ts)
        if raw_ts is None or ts is None:
            return _unauthorized(f"missing or malformed {TIMESTAMP_HEADER} header")
        signature = request.headers.get(SIGNATURE_HEADER)
        if signature is None or not _SIGNATURE_RE.match(signature.strip()):
            return _unauthorized(f"missing or malformed {SIGNATURE_HEADER} header")
        # Read (bounded) before the checks that need files, so that everything
        # blocking happens in one trip to the thread pool: each trip is a thread
        # handoff, the dominant cost of a request on a small machine.
        body = await _read_body(request)
        try:
            return await run_in_threadpool(
                _authenticate_and_fire, raw_ts.strip(), ts, signature, body, run
            )
        except Exception:
            log.exception("webhook: a fire request failed")
            return _reply(500, status="error", reason="internal error; see the gateway log")

    async def healthz(request: Request) -> JSONResponse:
        from cron.status import ticker_status

        try:
            status = await run_in_threadpool(ticker_status)
        except Exception as exc:
            log.exception("healthz: cannot compute the ticker status")
            return _reply(503, healthy=False, state="error", detail=f"{type(exc).__name__}: {exc}")
        return JSONResponse(status.to_dict(), status_code=200 if status.healthy else 503)

    async def metrics_endpoint(request: Request) -> Response:
        body = await run_in_threadpool(app.state.metrics.render)
        return Response(body, media_type=metrics_content_type())

    app = Starlette(
        routes=[
            Route(FIRE_PATH, fire, methods=["POST"]),
            Route(HEALTH_PATH, healthz, methods=["GET"]),
            Route(METRICS_PATH, metrics_endpoint, methods=["GET"]),
        ]
    )
    app.state.stopping = False
    app.state.metrics = metrics if metrics is not None else new_metrics()
    return app


# -- the client --------------------------------------------------------------------


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


__all__ = [
    "FIRE_PATH",
    "HEALTH_PATH",
    "METRICS_PATH",
    "MAX_BODY",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "GatewayNotRunningError",
    "create_app",
    "default_runner",
    "gateway_url",
    "load_or_create_secret",
    "post_fire",
    "read_gateway_info",
    "remember_signature",
    "sign",
    "verify",
]
