"""Two runtimes in one process (``cron.runtime.Runtime``): each on its own home and store.

Each ticker runs on a runtime of its own; each runs its own home's jobs only, and
stopping one (its ticker and its runtime) leaves the other running its job to the end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cron import executions, jobs, paths
from cron.runtime import Runtime, default_runtime
from cron.store import configured_url, get_store
from cron.stores import scheme_of
from cron.ticker import InProcessCronScheduler
from tests.conftest import write_config


def _wait(cond: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


@pytest.fixture
def two_homes(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, Path]]:
    if scheme_of(configured_url()) not in ("json", "sqlite"):
        # A shared database would be one store for both homes: give each its own file.
        monkeypatch.setenv("CRONKIT_STORE", "sqlite")
    homes = (tmp_path / "home-a", tmp_path / "home-b")
    for h in homes:
        write_config(h, "cron:\n  timezone: UTC\n  claim_ttl: 3\n")
    yield homes


class _Running:
    """A ticker on ``runtime`` in a thread of its own, stopped by :meth:`stop`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.ticker = InProcessCronScheduler(runtime=runtime)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(
            target=self.ticker.start,
            args=(self.stop_event,),
            kwargs={"interval": 0.2},
            daemon=True,
        )
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.ticker.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()


def test_two_runtimes_each_run_their_own_home_and_stopping_one_leaves_the_other(
    two_homes: tuple[Path, Path],
) -> None:
    home_a, home_b = two_homes
    rt_a, rt_b = Runtime(home=home_a), Runtime(home=home_b)
    assert rt_a is not default_runtime() and rt_b is not default_runtime()
    made: dict[Path, str] = {}
    for rt, sleep in ((rt_a, 60), (rt_b, 4)):
        with rt.bound():
            assert paths.home() == rt.home
            made[rt.home] = jobs.create_job(  # type: ignore[index]
                "every 1h",
                f'echo "$CRONKIT_HOME" > ran.txt; sleep {sleep}',
                name="long",
                now=datetime.now(UTC) - timedelta(hours=1, seconds=1),
            )["id"]
    stores = []
    for rt in (rt_a, rt_b):
        with rt.bound():
            stores.append(get_store())
    assert stores[0] is not stores[1]

    run_a, run_b = _Running(rt_a), _Running(rt_b)
    try:
        for rt in (rt_a, rt_b):
            _wait(
                lambda rt=rt: [r for r in rt.live_runs() if r.group is not None],
                20,
                f"{rt.home.name}'s job to start",
            )
            live = rt.live_runs()
            assert [r.job_id for r in live] == [made[rt.home]]  # its own job, nobody else's
            assert rt.running_jobs() == 1
            _wait(lambda rt=rt: (rt.home / "ran.txt").exists(), 10, "the command's marker")
            assert (rt.home / "ran.txt").read_text().strip() == str(rt.home)
        assert default_runtime().running_jobs() == 0

        # Stop a: its ticker, then its runtime (its command ended, recorded interrupted).
        run_a.stop()
        assert rt_a.close(timeout=10, term_grace=1.0)
        assert rt_a.running_jobs() == 0 and rt_a.live_runs() == []
        b_run = rt_b.live_runs()
        assert len(b_run) == 1 and b_run[0].group is not None and b_run[0].group.alive()
        assert run_b.thread.is_alive() and run_b.ticker.active
        assert rt_b.wait_for_running(20), "b's run did not finish"
    finally:
        run_a.stop() if run_a.thread.is_alive() else None
        run_b.stop()
        rt_a.close(timeout=5, term_grace=0.5)
        rt_b.close(timeout=5, term_grace=0.5)

    for rt, status in ((rt_a, "interrupted"), (rt_b, "ok")):
        with rt.bound():
            rows = [r for r in executions.list_executions(limit=None) if r["status"] != "claimed"]
            assert [(r["job_id"], r["status"]) for r in rows] == [(made[rt.home], status)], rows
