"""``ProviderContract``: the tests every ``CronScheduler`` must pass, whoever wrote it.

Subclass it in a test module and supply a ``provider`` fixture (zarr's
``StoreTests`` idiom)::

    class TestMyProvider(ProviderContract):
        @pytest.fixture
        def provider(self, home):
            return MyProvider()

The fixture may depend on ``home``, defined here: every test runs against a
private ``CRONKIT_HOME`` (and ``TZ=UTC``), so a plugin's own test suite needs
nothing from cronkit's. Nothing is mocked except the network, which
``is_available`` must not touch.
"""

from __future__ import annotations

import inspect
import shlex
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cron import executions, jobs
from cron.scheduler_provider import CronScheduler

OPTIONAL_HOOKS = ("is_available", "stop", "on_jobs_changed", "reconcile", "fire_due")


def _due_job(marker: Path) -> dict[str, Any]:
    """An hourly job whose slot came due 5 s ago; each run appends its slot to ``marker``."""
    now = datetime.now(UTC)
    command = f'echo "$CRONKIT_SCHEDULED_AT" >> {shlex.quote(str(marker))}'
    return jobs.create_job("every 1h", command, now=now - timedelta(seconds=3605))


def _runs(marker: Path) -> list[str]:
    return marker.read_text().splitlines() if marker.exists() else []


class ProviderContract:
    """Tests any trigger provider must pass. Provide a ``provider`` fixture."""

    @pytest.fixture
    def home(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """A fresh, private ``CRONKIT_HOME`` (created by the first write into it)."""
        h = tmp_path / "cronkit-home"
        monkeypatch.setenv("CRONKIT_HOME", str(h))
        monkeypatch.setenv("TZ", "UTC")
        return h

    @pytest.fixture
    def provider(self) -> CronScheduler:
        raise NotImplementedError("a ProviderContract subclass must define the provider fixture")

    # -- the shape --------------------------------------------------------------------------

    def test_is_a_concrete_cron_scheduler(self, provider: CronScheduler) -> None:
        assert isinstance(provider, CronScheduler)
        assert not type(provider).__abstractmethods__
        # The ABC itself still requires exactly name + start (growth stays additive).
        assert CronScheduler.__abstractmethods__ == frozenset({"name", "start"})

    def test_name_is_a_nonempty_string(self, provider: CronScheduler) -> None:
        assert isinstance(provider.name, str)
        assert provider.name.strip() == provider.name != ""

    @pytest.mark.parametrize("hook", ("start", *OPTIONAL_HOOKS))
    def test_overrides_keep_the_abc_signature(self, provider: CronScheduler, hook: str) -> None:
        """An override accepts every argument the ABC's callers may pass, the same way."""
        base = inspect.signature(getattr(CronScheduler, hook))
        mine = inspect.signature(getattr(type(provider), hook))
        params = mine.parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
        for name, want in base.parameters.items():
            if name == "self":
                continue
            if name not in params:
                assert takes_kwargs and want.kind is want.KEYWORD_ONLY, (hook, name)
                continue
            got = params[name]
            if want.kind is want.KEYWORD_ONLY:
                assert got.kind in (got.KEYWORD_ONLY, got.POSITIONAL_OR_KEYWORD), (hook, name)
            else:
                assert got.kind is want.kind, (hook, name)
            if want.default is not inspect.Parameter.empty:
                assert got.default is not inspect.Parameter.empty, (hook, name)
        extra_required = [
            p.name
            for n, p in params.items()
            if n not in base.parameters
            and p.default is inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        assert not extra_required, (hook, extra_required)

    # -- is_available: cheap, local, honest -------------------------------------------------

    def test_is_available_is_fast_bool_and_offline(
        self, provider: CronScheduler, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def no_network(*args: object, **kwargs: object) -> None:
            raise AssertionError("is_available() must not touch the network")

        monkeypatch.setattr(socket, "socket", no_network)
        monkeypatch.setattr(socket, "create_connection", no_network)
        monkeypatch.setattr(socket, "getaddrinfo", no_network)
        started = time.monotonic()
        result = provider.is_available()
        elapsed = time.monotonic() - started
        assert isinstance(result, bool)
        assert elapsed < 1.0, f"is_available() took {elapsed:.2f}s"

    # -- lifecycle ----------------------------------------------------------------------------

    def test_start_with_stop_event_already_set_returns_promptly(
        self, provider: CronScheduler
    ) -> None:
        stop = threading.Event()
        stop.set()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                provider.start(stop, interval=0.05)
            except BaseException as exc:  # noqa: B036 - reported below
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        started = time.monotonic()
        thread.start()
        thread.join(2.0)
        assert not thread.is_alive(), "start() ignored a set stop_event for 2 s"
        assert not errors, errors
        assert time.monotonic() - started < 2.0

    def test_hooks_are_callable_and_idempotent(self, provider: CronScheduler, home: Path) -> None:
        jobs.create_job("0 9 * * *", "true", name="contract-hooks")
        for _ in range(2):
            # The ABC says None; an override may not honour its annotation at run time.
            assert provider.on_jobs_changed() is None  # type: ignore[func-returns-value]
            assert provider.reconcile() is None  # type: ignore[func-returns-value]
        provider.stop()
        provider.stop()

    # -- fire_due: the claim decides, the run happens once ---------------------------------

    def test_fire_due_claims_then_runs_exactly_once(
        self, provider: CronScheduler, home: Path, tmp_path: Path
    ) -> None:
        marker = tmp_path / "runs.txt"
        job = _due_job(marker)
        slot = job["next_run_at"]

        assert provider.fire_due(job["id"]) is True
        assert _runs(marker) == [slot]
        rows = executions.list_executions(job["id"])
        assert [(r["status"], r["scheduled_at"], r["source"]) for r in rows] == [
            ("ok", slot, provider.name)
        ]
        # The same slot again (explicitly, or "whatever is due"): no second run.
        assert provider.fire_due(job["id"], scheduled_at=slot) is False
        assert provider.fire_due(job["id"]) is False
        assert _runs(marker) == [slot]
        assert len(executions.list_executions(job["id"])) == 1

    def test_fire_due_unknown_or_paused_job_is_a_no_op(
        self, provider: CronScheduler, home: Path, tmp_path: Path
    ) -> None:
        assert provider.fire_due("0123456789ab") is False
        marker = tmp_path / "runs.txt"
        job = _due_job(marker)
        jobs.pause_job(job["id"])
        assert provider.fire_due(job["id"]) is False
        assert _runs(marker) == []
        assert executions.list_executions(job["id"]) == []

    def test_concurrent_fire_due_runs_once(
        self, provider: CronScheduler, home: Path, tmp_path: Path
    ) -> None:
        marker = tmp_path / "runs.txt"
        job = _due_job(marker)
        barrier = threading.Barrier(6)
        results: list[bool] = []
        lock = threading.Lock()

        def fire() -> None:
            barrier.wait()
            won = provider.fire_due(job["id"], scheduled_at=job["next_run_at"])
            with lock:
                results.append(won)

        threads = [threading.Thread(target=fire) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(results) == [False] * 5 + [True]
        assert _runs(marker) == [job["next_run_at"]]
