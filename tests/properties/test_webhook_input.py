"""Property 5: no webhook input fires a job without a valid signature, and none yields a 5xx.

Against a home holding one due job, Hypothesis draws 1-3 requests to
``POST /cron/fire`` of ``cron.webhook.create_app`` (through Starlette's
``TestClient``; the app's ``runner`` seam records fires synchronously).
Each request has an arbitrary body (binary, text, JSON-ish with or without
the real ``job_id``, or padded to just under/over the 64 KiB limit), a
timestamp header (absent, now, beyond the skew in either direction,
garbage) and a signature header (absent, garbage, random hex, computed with
a WRONG secret, over a DIFFERENT body or timestamp, upper-cased, or correct),
plus arbitrary extra headers; some requests are sent twice (replay).

Invariants: every response is < 500; a request that is not correctly
signed by construction gets 401 or 413 (nothing about jobs is revealed) and
fires nothing; a fire happens only with a 202 and a 202 always means exactly
one run; the job fires at most once however often a request is replayed;
when nothing fired, the job, its ``repeat.completed`` and the ledger are
untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from tests.properties._home import fresh_home as _fresh_home

MAX_BODY = 64 * 1024
MAX_SKEW = 300
WRONG_SECRET = "0123456789abcdef" * 4
JOB = "@job"  # placeholder replaced by the real job id

_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
MAX_EXAMPLES = {"ci": 60}.get(_PROFILE, settings().max_examples)


@dataclass(frozen=True)
class Req:
    body: Any  # bytes, or a ("json", obj) / ("pad", size) recipe using JOB
    ts_mode: str = "now"  # absent | now | past | future | garbage | empty | fraction
    sig_mode: str = "correct"  # absent | garbage | random_hex | wrong_secret | other_body
    #                           | other_ts | upper | correct
    garbage: str = "x"
    extra: tuple[tuple[str, str], ...] = ()
    twice: bool = False


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=10,
)
json_bodies = st.one_of(
    st.fixed_dictionaries(
        {"job_id": st.just(JOB)},
        optional={
            "scheduled_at": st.one_of(
                st.text(max_size=30), st.just("2031-01-01T00:00:00+00:00"), st.integers()
            ),
            "nonce": st.text(max_size=10),
        },
    ),
    st.fixed_dictionaries(
        {"job_id": st.one_of(st.text(max_size=20), st.integers(), st.none(), json_values)}
    ),
    json_values,
).map(lambda obj: ("json", obj))
bodies = st.one_of(
    json_bodies,
    st.just(("json", {"job_id": JOB})),
    st.text(max_size=20).map(lambda t: ("json", {"job_id": t or "x"})),
    st.binary(max_size=2048),
    st.text(max_size=500).map(lambda t: t.encode("utf-8")),
    st.integers(MAX_BODY - 40, 70 * 1024).map(lambda n: ("pad", n)),
)
header_names = st.from_regex(r"X-[A-Za-z0-9-]{1,16}", fullmatch=True)
header_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
requests = st.builds(
    Req,
    body=bodies,
    ts_mode=st.sampled_from(
        ["now", "now", "now", "absent", "past", "future", "garbage", "empty", "fraction"]
    ),
    sig_mode=st.sampled_from(
        [
            "correct",
            "correct",
            "correct",
            "absent",
            "garbage",
            "random_hex",
            "wrong_secret",
            "other_body",
            "other_ts",
            "upper",
        ]
    ),
    garbage=header_values,
    extra=st.lists(st.tuples(header_names, header_values), max_size=3).map(tuple),
    twice=st.booleans(),
)


def fresh_home() -> contextlib.AbstractContextManager[Path]:
    return _fresh_home(
        f"cron:\n  timezone: UTC\n  webhook:\n    max_skew: {MAX_SKEW}\n", prefix="cronkit-p5-"
    )


def _substitute(obj: Any, job_id: str) -> Any:
    if obj == JOB:
        return job_id
    if isinstance(obj, dict):
        return {k: _substitute(v, job_id) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_substitute(v, job_id) for v in obj]
    return obj


def render_body(body: Any, job_id: str) -> bytes:
    if isinstance(body, bytes):
        return body
    kind, value = body
    if kind == "json":
        return json.dumps(_substitute(value, job_id)).encode("utf-8")
    head = json.dumps({"job_id": job_id, "pad": ""}).encode("utf-8")
    pad = max(0, value - len(head))
    return json.dumps({"job_id": job_id, "pad": "x" * pad}).encode("utf-8")


def render_headers(req: Req, body: bytes, secret: str) -> tuple[dict[str, str], bool]:
    """The request headers, and whether the request is correctly signed by construction."""
    from cron.webhook import sign

    now = int(time.time())
    ts = {
        "now": str(now),
        "absent": None,
        "past": str(now - MAX_SKEW - 5),
        "future": str(now + MAX_SKEW + 5),
        "garbage": req.garbage,
        "empty": "",
        "fraction": f"{now}.5",
    }[req.ts_mode]
    signed_ts = ts if ts is not None else str(now)
    sig = {
        "correct": sign(secret, signed_ts, body),
        "absent": None,
        "garbage": req.garbage,
        "random_hex": "sha256=" + "ab" * 32,
        "wrong_secret": sign(WRONG_SECRET, signed_ts, body),
        "other_body": sign(secret, signed_ts, body + b" "),
        "other_ts": sign(
            secret,
            str(int(signed_ts.split(".")[0] or now) + 1)
            if signed_ts.split(".")[0].isdigit()
            else "1",
            body,
        ),
        "upper": sign(secret, signed_ts, body).upper(),
    }[req.sig_mode]
    headers = {
        k: v
        for k, v in req.extra
        if k.lower() not in ("x-cronkit-timestamp", "x-cronkit-signature")
    }
    if ts is not None:
        headers["X-Cronkit-Timestamp"] = ts
    if sig is not None:
        headers["X-Cronkit-Signature"] = sig
    valid_ts = ts is not None and req.ts_mode in ("now", "fraction")
    correct = (
        req.sig_mode == "correct"
        and valid_ts
        and len(body) <= MAX_BODY
        and sig == sign(secret, ts or "", body)
    )
    return headers, correct


@settings(
    max_examples=MAX_EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(reqs=st.lists(requests, min_size=1, max_size=3))
@example(reqs=[Req(body=("json", {"job_id": JOB}), twice=True)])
@example(reqs=[Req(body=("json", {"job_id": JOB}), sig_mode="random_hex")])
@example(
    reqs=[
        Req(body=("json", {"job_id": JOB})),
        Req(body=("json", {"job_id": JOB}), sig_mode="random_hex"),
    ]
)
@example(reqs=[Req(body=("json", {"job_id": JOB}), sig_mode="wrong_secret")])
@example(reqs=[Req(body=("json", {"job_id": JOB}), sig_mode="other_body")])
@example(reqs=[Req(body=("pad", MAX_BODY + 1))])
@example(reqs=[Req(body=("pad", MAX_BODY))])
@example(reqs=[Req(body=b"\xff\xfe{", sig_mode="garbage", garbage="sha256=")])
@example(reqs=[Req(body=("json", {"job_id": JOB}), ts_mode="past")])
def test_webhook_never_fires_unsigned_and_never_5xx(reqs: list[Req]) -> None:
    from starlette.testclient import TestClient

    from cron import executions, jobs
    from cron.webhook import create_app, load_or_create_secret

    with fresh_home():
        now = datetime.now(UTC)
        job = jobs.create_job("every 60s", "true", name="due", now=now - timedelta(seconds=90))
        job_id = job["id"]
        assert jobs.get_due_jobs(now=now)  # the job really is due
        before = jobs.get_job(job_id)
        secret = load_or_create_secret()
        fired: list[dict[str, Any]] = []
        app = create_app(runner=lambda j: fired.append(j))
        log: list[tuple[int, bool, str]] = []
        with TestClient(app, raise_server_exceptions=False) as client:
            for req in reqs:
                body = render_body(req.body, job_id)
                headers, correct = render_headers(req, body, secret)
                for attempt in range(2 if req.twice else 1):
                    runs_before = len(fired)
                    resp = client.post("/cron/fire", content=body, headers=headers)
                    log.append((resp.status_code, correct, resp.text[:120]))
                    assert resp.status_code < 500, (
                        f"{resp.status_code} {resp.text[:200]} for {req} (attempt {attempt})"
                    )
                    ran = len(fired) - runs_before
                    if not correct:
                        assert resp.status_code in (401, 413), (
                            f"an unsigned request got {resp.status_code} {resp.text[:200]}: {req}"
                        )
                    if resp.status_code == 202:
                        assert correct and ran == 1, f"202 with {ran} runs: {req}"
                    else:
                        assert ran == 0, (
                            f"job fired by a {resp.status_code} response: {req} "
                            f"(correctly signed: {correct})"
                        )
        for code, correct, _text in log:
            event(f"{'signed' if correct else 'unsigned'} -> {code}")
        assert len(fired) <= 1, f"the job fired {len(fired)} times: {log}"
        after = jobs.get_job(job_id)
        rows = executions.list_executions(job_id, limit=None)
        assert after is not None and before is not None
        if fired:
            assert any(code == 202 for code, _c, _t in log)
            assert after["repeat"]["completed"] == before["repeat"]["completed"] + 1
            assert len(rows) == 1
        else:
            assert after == before, "a request that fired nothing changed the job"
            assert rows == [], f"ledger rows written without a fire: {rows}"
