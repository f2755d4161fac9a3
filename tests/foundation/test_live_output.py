"""A run's output file is written as the run produces it (SPEC §14 "Logs").

Real commands, real files; the runs are short (a second or two at most).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cron import executions, jobs, output, paths, scheduler
from cron.output import read_output

T0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
DUE = T0 + timedelta(minutes=1)


def _wait_for(pred: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def _rows(job_id: str) -> list[dict[str, Any]]:
    return executions.list_executions(job_id)


def test_first_line_is_in_the_file_before_the_run_ends(home: Path) -> None:
    release = home.parent / "release"
    job = jobs.create_job(
        "every 1m",
        f"echo first; while [ ! -e '{release}' ]; do sleep 0.02; done; echo second",
        now=T0,
    )
    ticking = threading.Thread(target=scheduler.tick, kwargs={"now": DUE, "sync": True})
    ticking.start()
    try:
        # The row names its file while the run is still going, and the file has line one.
        row = _wait_for(
            lambda: next(
                (r for r in _rows(job["id"]) if r["status"] == "running" and r["output_path"]), None
            )
        )
        path = Path(row["output_path"])
        assert path.parent == paths.output_dir(job["id"])
        _wait_for(lambda: read_output(path) == "first\n")
        assert executions.get_execution(row["id"])["status"] == "running"  # type: ignore[index]
    finally:
        release.touch()
        ticking.join(timeout=30)
    assert not ticking.is_alive()
    (final,) = _rows(job["id"])
    assert (final["status"], final["output_path"]) == ("ok", str(path))
    assert read_output(path) == "first\nsecond\n"
    assert oct(path.stat().st_mode & 0o777) == oct(paths.FILE_MODE)


def test_a_failed_run_keeps_its_output_then_the_status_note(home: Path) -> None:
    job = jobs.create_job("every 1m", "echo oops; exit 3", now=T0)
    assert scheduler.tick(now=DUE, sync=True) == 1
    (row,) = _rows(job["id"])
    assert (row["status"], row["error"]) == ("error", "exit status 3")
    # The same bytes as when the file was written at the end.
    assert read_output(row["output_path"]) == "oops\n\n[cronkit] error: exit status 3\n"


def test_a_silent_failure_is_just_the_note(home: Path) -> None:
    job = jobs.create_job("every 1m", "exit 127", now=T0)
    assert scheduler.tick(now=DUE, sync=True) == 1
    (row,) = _rows(job["id"])
    assert read_output(row["output_path"]) == "[cronkit] error: exit status 127\n"


def test_output_over_the_cap_ends_as_the_tail(home: Path) -> None:
    job = jobs.create_job(
        "every 1m", "head -c 3000000 /dev/zero | tr '\\0' a; echo; echo THE-END; exit 4", now=T0
    )
    assert scheduler.tick(now=DUE, sync=True) == 1
    (row,) = _rows(job["id"])
    text = read_output(row["output_path"])
    assert text.startswith("[cronkit: output truncated, first ")
    assert text.endswith("THE-END\n\n[cronkit] error: exit status 4\n")
    assert len(text.encode()) <= 1024 * 1024 + 200
    assert output.list_outputs(job["id"]) == [Path(row["output_path"])]


def test_python_output_is_written_at_the_end_to_the_file_named_at_the_start(
    home: Path,
) -> None:
    job = jobs.create_job(
        "every 1m", {"kind": "python", "target": "tests.characterization.actions:ok"}, now=T0
    )
    assert scheduler.tick(now=DUE, sync=True) == 1
    (row,) = _rows(job["id"])
    assert row["status"] == "ok"
    assert read_output(row["output_path"]) == "ok"


def test_retention_counts_the_file_of_the_running_run(home: Path) -> None:
    job = jobs.create_job("every 1m", "echo run", now=T0)
    for i in range(4):
        at = DUE + timedelta(minutes=i)
        assert scheduler.tick(now=at, sync=True) == 1
    files = output.list_outputs(job["id"])
    assert len(files) == 4
    live = output.open_output(job["id"], retention=2)
    try:
        assert output.list_outputs(job["id"]) == [files[-1], live.path]
        live.write(b"partial ")
        assert read_output(live.path) == "partial "
    finally:
        assert live.finish("ignored: it was streamed", "[cronkit] error: x\n") == live.path
    assert read_output(live.path) == "partial \n[cronkit] error: x\n"


def test_a_write_that_fails_does_not_fail_the_run(home: Path) -> None:
    live = output.open_output("abc123abc123", retention=5)
    live.close()  # as if the descriptor went bad: writes are dropped, not raised
    live.write(b"lost")
    assert live.finish("", None) == live.path


@pytest.mark.parametrize("status", ["error", "interrupted"])
def test_history_knows_the_path_of_a_failed_run(home: Path, status: str) -> None:
    job = jobs.create_job("every 1m", "echo partial; exit 127", now=T0)
    assert scheduler.tick(now=DUE, sync=True) == 1
    (row,) = _rows(job["id"])
    assert row["status"] == "error" and row["output_path"]
    # A later close (recovery, shutdown) of a row already final is refused: the slot's
    # one outcome stands, and the output path recorded at start stays.
    assert executions.finish(row["id"], status=status, error="later") is False
    again = executions.get_execution(row["id"])
    assert again is not None
    assert (again["status"], again["error"], again["output_path"]) == (
        row["status"],
        row["error"],
        row["output_path"],
    )
