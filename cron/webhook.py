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

The server is this module; who may fire (the secret, signatures, the replay
record) is :mod:`cron.webhook_auth` and the client (:func:`post_fire`) is
:mod:`cron.webhook_client`. Their public names are importable from here.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cron.errors import ScheduleError
from cron.metrics import Metrics, metrics_content_type, new_metrics
from cron.stores import Replay
from cron.webhook_auth import (
    _SIGNATURE_RE,
    FIRE_PATH,
    HEALTH_PATH,
    MAX_BODY,
    METRICS_PATH,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    _digest,
    _max_skew,
    _parse_timestamp,
    load_or_create_secret,
    nonces_path,
    remember_signature,
    sign,
    verify,
)
from cron.webhook_client import GatewayNotRunningError, gateway_url, post_fire, read_gateway_info

log = logging.getLogger(__name__)

Job = dict[str, Any]
Runner = Callable[[Job], object]
"""Runs one claimed job (the dict carries its ``fire_claim``); should return promptly."""


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
    job_id: str, slot: datetime | None, replay: Replay, runner: Runner
) -> JSONResponse:
    """Steps 6–9 of the module docstring (blocking: runs in the thread pool).

    :func:`cron.scheduler.fire_job` with the request's ``replay``: the replay
    record, the claim and its ``claimed`` row are one store write, a job gone by
    the re-read has its claim released and is never run.
    """
    from cron.claim import ClaimReason
    from cron.scheduler import REMOVED_BEFORE_RUN, fire_job, release_claim

    # The claim reads the job: it is also the lookup for 404.
    fired = fire_job(job_id, source="webhook", scheduled_at=slot, replay=replay)
    if fired.replayed:
        return _reply(409, status="not_claimed", reason="replayed request")
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
    # DEBUG: the run's own "run start: ... source webhook" line already says it at INFO.
    log.debug("webhook fired job %s for slot %s", job_id, outcome.scheduled_at)
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
    replay = Replay(_digest(secret, raw_ts, body), time.time(), 2 * max_skew)
    try:
        return _claim_and_dispatch(job_id, slot, replay, runner)
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
    "nonces_path",
    "post_fire",
    "read_gateway_info",
    "remember_signature",
    "sign",
    "verify",
]
