"""Property 2: no tick failure kills the ticker, and its files tell the truth.

Hypothesis draws a sequence of steps. Each step is one loop iteration of the
real ``InProcessCronScheduler.start``: the tick's outcome (clean, a tick that
blocks briefly, ``Exception``, ``SystemExit``, ``KeyboardInterrupt``, a custom
``BaseException``), whether that iteration's heartbeat write fails with
``OSError`` (the real ``cron.paths.atomic_write_text`` raises for the
heartbeat files), and how far the clock moves before the next iteration.
Time is frozen with freezegun and moved only by the injected ``wait_fn``,
which sets ``stop_event`` after the last step — the only way the loop may end.

Invariants: every step runs (iterations == ticks == waits == steps) and
``start`` returns normally only after ``stop_event``; after every iteration
the heartbeat file holds the clock of the last iteration whose write could
succeed, the success marker the clock of the last clean tick whose write
succeeded (absent if none), ``ticker_last_error`` is present iff a failure
happened since the last clean tick and names its type; ``ticker_status``
computed from those files (at the injected clock) equals the model's state
(running / failing / stalled); each failure is logged at ERROR with its
traceback; the pid file is removed on the clean stop.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from freezegun import freeze_time
from hypothesis import event, example, given
from hypothesis import strategies as st

from tests.properties._home import fresh_home as _fresh_home

BASE = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)
STALE_AFTER = 200.0  # SPEC §8 default (config interval 60: 3 * 60 + 20 = 200)
OUTCOMES = ("clean", "block", "exception", "systemexit", "keyboardinterrupt", "custom")


class TickAbort(BaseException):
    """A custom BaseException, as a buggy library or job import might raise."""


RAISES: dict[str, type[BaseException]] = {
    "exception": RuntimeError,
    "systemexit": SystemExit,
    "keyboardinterrupt": KeyboardInterrupt,
    "custom": TickAbort,
}


@dataclass(frozen=True)
class Step:
    outcome: str = "clean"
    beat_fails: bool = False  # this iteration's heartbeat write raises OSError
    advance: float = 1.0  # seconds the clock moves during the following wait
    block: float = 0.0  # real seconds a "block" tick takes


steps_strategy = st.lists(
    st.builds(
        Step,
        outcome=st.sampled_from(OUTCOMES),
        beat_fails=st.integers(0, 3).map(lambda i: i == 3),
        advance=st.sampled_from([1.0, 30.0, 60.0, 150.0, 199.0, 201.0, 250.0, 0.5]),
        block=st.floats(0.001, 0.01),
    ),
    min_size=1,
    max_size=15,
)


def fresh_home() -> contextlib.AbstractContextManager[Path]:
    return _fresh_home(prefix="cronkit-p2-")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _epoch(path: Path) -> float | None:
    try:
        return float(path.read_text(encoding="utf-8").splitlines()[0])
    except FileNotFoundError:
        return None


@dataclass
class Model:
    clock: float
    beat: float | None = None
    success: float | None = None
    error: str | None = None  # "Type: message" of the last failure since the last clean tick

    def state(self) -> str:
        assert self.beat is not None
        if self.clock - self.beat > STALE_AFTER:
            return "stalled"
        if self.success is None or self.clock - self.success > STALE_AFTER:
            return "failing"
        return "running"


@given(steps=steps_strategy)
@example(steps=[Step("systemexit")])
@example(steps=[Step("exception")])
@example(steps=[Step("keyboardinterrupt"), Step("clean")])
@example(steps=[Step("custom", advance=201.0), Step("clean", beat_fails=True, advance=250.0)])
@example(
    steps=[
        Step("clean", advance=150.0),
        Step("exception", advance=60.0),
        Step("exception", advance=1.0),
    ]
)
def test_tick_failures_never_kill_the_ticker(steps: list[Step]) -> None:
    from cron import paths
    from cron.scheduler_provider import InProcessCronScheduler
    from cron.status import ticker_status

    handler = _Collect()
    logger = logging.getLogger("cron.scheduler_provider")
    logger.addHandler(handler)
    real_write = paths.atomic_write_text
    mismatches: list[str] = []
    counters = {"ticks": 0, "waits": 0}
    fail_beat = {"on": False}
    expected_errors: list[type[BaseException]] = []
    states_seen: set[str] = set()

    def flaky_write(path: Path, text: str, *, durable: bool = True) -> None:
        if fail_beat["on"] and path.name in ("ticker_heartbeat", "ticker_last_success"):
            raise OSError(28, "No space left on device (injected)", str(path))
        real_write(path, text, durable=durable)

    try:
        with fresh_home() as home, freeze_time(BASE, tick=False) as frozen:
            model = Model(clock=BASE.timestamp())
            stop_event = threading.Event()
            cron_dir = home / "cron"

            def fake_tick(**kwargs: Any) -> int:
                k = counters["ticks"]
                counters["ticks"] += 1
                assert kwargs.get("sync") is False, kwargs
                step = steps[k]
                fail_beat["on"] = step.beat_fails
                if step.outcome == "block":
                    time.sleep(step.block)
                if step.outcome in RAISES:
                    exc_type = RAISES[step.outcome]
                    expected_errors.append(exc_type)
                    model.error = f"{exc_type.__name__}: boom {k}"
                    if not step.beat_fails:
                        model.beat = model.clock
                    raise exc_type(f"boom {k}")
                model.error = None
                if not step.beat_fails:
                    model.beat = model.success = model.clock
                return 0

            def check(where: str) -> None:
                beat = _epoch(cron_dir / "ticker_heartbeat")
                success = _epoch(cron_dir / "ticker_last_success")
                err_file = cron_dir / "ticker_last_error"
                err = err_file.read_text(encoding="utf-8") if err_file.exists() else None
                got_err = None if err is None else err.split("\n", 1)[1].strip()

                def same(a: float | None, b: float | None) -> bool:
                    if a is None or b is None:
                        return a is b
                    return abs(a - b) < 2e-3

                if not same(beat, model.beat):
                    mismatches.append(f"{where}: heartbeat {beat} != model {model.beat}")
                if not same(success, model.success):
                    mismatches.append(f"{where}: success {success} != model {model.success}")
                if got_err != model.error:
                    mismatches.append(f"{where}: last_error {got_err!r} != model {model.error!r}")
                status = ticker_status(now=model.clock)
                states_seen.add(status.state)
                if status.state != model.state():
                    mismatches.append(
                        f"{where}: status {status.state} != model {model.state()} "
                        f"(heartbeat_age={status.heartbeat_age}, "
                        f"success_age={status.success_age})"
                    )
                if status.last_error != model.error:
                    mismatches.append(
                        f"{where}: status.last_error {status.last_error!r} != {model.error!r}"
                    )

            def fake_wait(event: threading.Event, delay: float) -> None:
                k = counters["waits"]
                counters["waits"] += 1
                fail_beat["on"] = False
                if counters["ticks"] != k + 1:
                    mismatches.append(f"wait {k} after {counters['ticks']} ticks")
                check(f"after iteration {k} ({steps[k]})")
                frozen.tick(timedelta(seconds=steps[k].advance))
                model.clock += steps[k].advance
                check(f"{steps[k].advance}s after iteration {k}")
                if k == len(steps) - 1:
                    event.set()

            sched = InProcessCronScheduler(
                tick_fn=fake_tick, wait_fn=fake_wait, clock=lambda: model.clock
            )
            model.beat = model.clock  # start() beats once before the first tick
            paths.atomic_write_text = flaky_write
            escaped: BaseException | None = None
            try:
                sched.start(stop_event, interval=60)
            except BaseException as exc:  # noqa: B036 - KeyboardInterrupt must not end the run
                escaped = exc
            finally:
                paths.atomic_write_text = real_write
            pid_left = (cron_dir / "ticker.pid").exists()
    finally:
        logger.removeHandler(handler)

    event(f"status states seen: {sorted(states_seen)}")
    assert escaped is None, (
        f"{type(escaped).__name__}({escaped}) escaped InProcessCronScheduler.start "
        f"after {counters['ticks']} of {len(steps)} ticks: the ticker died"
    )
    assert stop_event.is_set()
    assert counters["ticks"] == len(steps), "the loop ended before stop_event"
    assert counters["waits"] == len(steps)
    assert sched.iterations == len(steps)
    assert not mismatches, "\n".join(mismatches)
    assert not pid_left, "ticker.pid not removed on a clean stop"
    logged = [r for r in handler.records if r.levelno >= logging.ERROR]
    assert [r.exc_info[0] if r.exc_info else None for r in logged] == expected_errors, [
        (r.getMessage(), r.exc_info) for r in logged
    ]
