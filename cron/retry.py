"""Retries of a failed run, for the same slot (SPEC §13): the policy, the timing, the clock.

Everything here is pure except :class:`SystemClock`. The scheduler asks
:func:`plan_retry` what to do after an attempt, and waits through
:class:`RetryTiming` — the seam tests replace with a fake clock and a seeded
``random.Random``, so no test ever sleeps through a real backoff.

The timing rule: the wait before attempt ``k + 1`` (after attempt ``k`` failed) is
``backoff * 2 ** (k - 1)``, times a jitter factor drawn uniformly from
``[0.9, 1.1]``, and never more than ``max_backoff``.
"""

from __future__ import annotations

import enum
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from cron.errors import JobValueError, ScheduleError

JITTER = 0.10
"""Each wait is scaled by a factor drawn from ``[1 - JITTER, 1 + JITTER]``."""

MAX_RETRIES = 100
"""Upper bound on ``retry.max``: past it, retrying is a loop, not a policy."""

RETRY_STATUSES = frozenset({"error", "timeout"})
"""Run outcomes that are retried. ``interrupted`` is not: someone stopped the run."""

RETRY_KEYS = ("max", "backoff", "max_backoff")
DEFAULT_POLICY: dict[str, float] = {"max": 0, "backoff": 30, "max_backoff": 3600}


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a job's failed slot is run again."""

    max: int = 0
    """Attempts after the first; 0 = never retried."""
    backoff: float = 30.0
    """Seconds before the first retry; each further retry waits twice as long."""
    max_backoff: float = 3600.0
    """No wait is longer than this."""


def _number(key: str, value: object, *, whole: bool) -> float:
    kinds: tuple[type, ...] = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value != value:  # NaN
        expected = "a whole number >= 0" if whole else "seconds >= 0"
        raise JobValueError(f"retry.{key}", value, f"expected {expected}")
    number = float(value)  # type: ignore[arg-type]
    if number < 0:
        raise JobValueError(f"retry.{key}", value, "must be >= 0")
    if whole and number > MAX_RETRIES:
        raise JobValueError(f"retry.{key}", value, f"at most {MAX_RETRIES} retries")
    return number


def validate_retry(value: object) -> dict[str, Any] | None:
    """A job's ``retry`` field as given (only the keys set; the rest come from config).

    ``None`` = no field (config defaults). Raises :class:`JobValueError` naming
    the key for anything else that is not a mapping of the three keys.
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"max": value}  # a bare number is the count, as --retries N is
    if not isinstance(value, dict):
        raise JobValueError("retry", value, "expected {max: N, backoff: s, max_backoff: s}")
    unknown = sorted(str(k) for k in value if k not in RETRY_KEYS)
    if unknown:
        raise JobValueError("retry", unknown[0], f"unknown key (known: {', '.join(RETRY_KEYS)})")
    out: dict[str, Any] = {}
    for key in RETRY_KEYS:
        if key in value:
            number = _number(key, value[key], whole=key == "max")
            out[key] = int(number) if key == "max" else value[key]
    return out


def policy_for(job: dict[str, Any], cfg: dict[str, Any] | None) -> RetryPolicy:
    """The job's ``retry`` keys over ``cron.retry`` over the built-in defaults."""
    merged: dict[str, Any] = dict(DEFAULT_POLICY)
    section = ((cfg or {}).get("cron") or {}).get("retry")
    if isinstance(section, dict):
        merged.update({k: v for k, v in section.items() if k in RETRY_KEYS})
    own = job.get("retry")
    if isinstance(own, dict):
        merged.update({k: v for k, v in own.items() if k in RETRY_KEYS})
    return RetryPolicy(int(merged["max"]), float(merged["backoff"]), float(merged["max_backoff"]))


def parse_duration(text: str, *, what: str = "retry.backoff") -> float:
    """Seconds in ``text``: ``30``, ``30s``, ``2m``, ``1h30m`` (the schedule's duration syntax)."""
    from cron.schedule import _parse_duration  # one duration grammar for schedules and backoffs

    stripped = text.strip()
    try:
        seconds = float(stripped)
    except ValueError:
        try:
            return float(_parse_duration(stripped, text))
        except ScheduleError:
            raise JobValueError(what, text, "expected a duration such as 30s, 2m or 1h") from None
    if seconds < 0 or seconds != seconds:
        raise JobValueError(what, text, "must be >= 0 seconds")
    return seconds


def backoff_delay(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1 = the first run) before the next.

    ``backoff * 2 ** (attempt - 1)`` scaled by a jitter factor in ``[0.9, 1.1]``,
    capped at ``max_backoff``. Jitter spreads the retries of many jobs that
    failed together (a database went away) instead of retrying them in step.
    """
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt!r}")
    # min() before the power would overflow: 2 ** 1000 seconds is still "the cap".
    exponent = min(attempt - 1, 64)
    base = policy.backoff * (2.0**exponent)
    factor = rng.uniform(1.0 - JITTER, 1.0 + JITTER)
    return max(0.0, min(policy.max_backoff, base * factor))


class RetryVerdict(enum.Enum):
    """What :func:`plan_retry` decided. Callers branch on this, never on the note text."""

    RETRY = "retry"
    NOT_A_FAILURE = "not a failure"
    NO_POLICY = "no retries configured"
    EXHAUSTED = "retries used up"
    PAST_NEXT_SLOT = "would start after the next slot"


@dataclass(frozen=True)
class RetryPlan:
    verdict: RetryVerdict
    attempt: int
    """The attempt that would run next (``failed attempt + 1``)."""
    at: datetime | None = None
    """When that attempt starts (RETRY and PAST_NEXT_SLOT)."""
    delay: float = 0.0
    note: str = ""
    """What the failed attempt's ledger row says about the retry (empty: nothing)."""


def plan_retry(
    *,
    status: str,
    attempt: int,
    policy: RetryPolicy,
    now: datetime,
    next_slot: datetime | None,
    rng: random.Random,
) -> RetryPlan:
    """After ``attempt`` ended with ``status`` at ``now``: run again, and when — or why not.

    A retry that would not start before ``next_slot`` (the job's next slot) is
    not run: the slot's claim is released and that slot fires normally.
    ``next_slot`` None (a one-shot, a spent or paused job) sets no limit.
    """
    nxt = attempt + 1
    if status not in RETRY_STATUSES:
        return RetryPlan(RetryVerdict.NOT_A_FAILURE, nxt)
    if policy.max <= 0:
        return RetryPlan(RetryVerdict.NO_POLICY, nxt)
    if attempt > policy.max:
        return RetryPlan(
            RetryVerdict.EXHAUSTED,
            nxt,
            note=f"no retry left ({policy.max} of {policy.max} used)",
        )
    delay = backoff_delay(attempt, policy, rng)
    at = now + timedelta(seconds=delay)
    if next_slot is not None and at >= next_slot:
        return RetryPlan(
            RetryVerdict.PAST_NEXT_SLOT,
            nxt,
            at,
            delay,
            note=(
                f"retry {attempt} of {policy.max} not run: it would start at "
                f"{at.isoformat()}, not before the next slot {next_slot.isoformat()}"
            ),
        )
    return RetryPlan(
        RetryVerdict.RETRY,
        nxt,
        at,
        delay,
        note=f"retry {attempt} of {policy.max} at {at.isoformat()}",
    )


# -- the time seam --------------------------------------------------------------------


class Clock(Protocol):
    """Where a retry's wait takes its time from. ``sleep`` returns early once ``wake`` is set."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float, wake: threading.Event) -> None: ...


class SystemClock:
    """The wall clock; sleeping is an interruptible wait on ``wake``."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float, wake: threading.Event) -> None:
        wake.wait(max(0.0, seconds))


@dataclass
class RetryTiming:
    """The clock retries wait on and the random source of their jitter."""

    clock: Clock = field(default_factory=SystemClock)
    rng: random.Random = field(default_factory=random.Random)


class FakeClock:
    """A clock that moves only when slept on or set: for tests and simulations.

    ``on_sleep(clock, seconds)`` runs after each sleep has advanced the time
    (a test looks at the store in the middle of a backoff from there).
    """

    def __init__(self, start: datetime, on_sleep: Any = None) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.slept: list[float] = []
        self.on_sleep = on_sleep

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = max(self._now, when)

    def sleep(self, seconds: float, wake: threading.Event) -> None:
        with self._lock:
            self._now += timedelta(seconds=max(0.0, seconds))
            self.slept.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(self, seconds)
        time.sleep(0)  # let other threads run, as a real wait would


__all__ = [
    "Clock",
    "FakeClock",
    "RetryPlan",
    "RetryPolicy",
    "RetryTiming",
    "RetryVerdict",
    "SystemClock",
    "backoff_delay",
    "parse_duration",
    "plan_retry",
    "policy_for",
    "validate_retry",
]
