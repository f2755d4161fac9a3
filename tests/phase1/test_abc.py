"""Phase 1: the provider ABC. Its required surface is exactly {name, start}, forever."""

from __future__ import annotations

import inspect
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cron import executions, jobs
from cron.trigger import CronScheduler


class Minimal(CronScheduler):
    """A provider that implements only the required surface."""

    @property
    def name(self) -> str:
        return "minimal"

    def start(self, stop_event, *, adapters=None, loop=None, interval=60):
        stop_event.wait(0)


def test_abc_growth_stays_additive() -> None:
    # Adding an abstract method would break every provider already written;
    # new hooks must arrive with a safe default instead.
    assert CronScheduler.__abstractmethods__ == frozenset({"name", "start"})


def test_abc_itself_is_not_instantiable() -> None:
    with pytest.raises(TypeError, match="abstract"):
        CronScheduler()  # type: ignore[abstract]


def test_missing_either_required_member_is_not_instantiable() -> None:
    class NoStart(CronScheduler):
        @property
        def name(self) -> str:
            return "x"

    class NoName(CronScheduler):
        def start(self, stop_event, *, adapters=None, loop=None, interval=60):
            return None

    with pytest.raises(TypeError):
        NoStart()  # type: ignore[abstract]
    with pytest.raises(TypeError):
        NoName()  # type: ignore[abstract]


def test_minimal_subclass_inherits_working_defaults(home: Path) -> None:
    p = Minimal()
    assert p.name == "minimal"
    assert p.is_available() is True
    assert p.stop() is None
    assert p.on_jobs_changed() is None
    assert p.reconcile() is None
    ev = threading.Event()
    ev.set()
    p.start(ev)


def test_default_fire_due_claims_then_runs_once(home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "fired.txt"
    t0 = datetime.now(UTC) - timedelta(seconds=90)
    job = jobs.create_job("every 1m", f"echo fired >> {marker}", now=t0)
    p = Minimal()
    assert p.fire_due(job["id"]) is True
    assert marker.read_text().count("fired") == 1
    # The same (already fired) slot again: the claim says no, nothing runs.
    assert p.fire_due(job["id"], scheduled_at=t0 + timedelta(seconds=60)) is False
    assert marker.read_text().count("fired") == 1
    rows = executions.list_executions(job["id"])
    assert [(r["status"], r["source"]) for r in rows] == [("ok", "minimal")]


def test_default_fire_due_unknown_job_is_false(home: Path) -> None:
    assert Minimal().fire_due("000000000000") is False


def test_optional_hooks_have_documented_signatures() -> None:
    # Providers override these by name; a renamed parameter would break them.
    sig = inspect.signature(CronScheduler.fire_due)
    assert list(sig.parameters)[:2] == ["self", "job_id"]
    assert {"adapters", "loop", "scheduled_at"} <= set(sig.parameters)
    start = inspect.signature(CronScheduler.start)
    assert {"stop_event", "adapters", "loop", "interval"} <= set(start.parameters)
    assert start.parameters["interval"].default == 60
