"""Registering, a ticker deletes the registry rows its dead predecessors of this host and
home left (SPEC §11–§12), and only those: real store (the suite's: json's ledger file,
SQLite, or PostgreSQL with ``CRONKIT_TEST_STORE=postgres``), real lock file, real processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cron import paths, procinfo
from cron.registry import Registration, list_nodes
from cron.store import get_store
from cron.ticker import TickerLock


@pytest.fixture
def lock(home: Path) -> Iterator[TickerLock]:
    """This home's ticker lock, held as the active ticker holds it."""
    held = TickerLock()
    assert held.try_acquire()
    yield held
    held.release()


@pytest.fixture
def live_pid() -> Iterator[int]:
    """A process that is alive for the test."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid names no process now
    return proc.pid


def _row(
    pid: int, process_start: str | None, *, host: str | None = None, home: str | None = None
) -> str:
    """A registry row as a ticker of ``pid`` would have left it; its node id."""
    reg = Registration(get_store(), provider="builtin")
    reg.host = host or procinfo.hostname()
    reg.pid = pid
    reg.process_start = process_start
    reg.home = home or str(paths.home())
    reg.node_id = f"{reg.host}:{pid}:{process_start}"
    reg.beat(ok=True)
    return reg.node_id


def _nodes() -> set[str]:
    return {n.node_id for n in list_nodes(get_store())}


def test_the_active_ticker_deletes_a_dead_predecessor_of_its_home(lock: TickerLock) -> None:
    dead = _row(_dead_pid(), "12345")
    assert dead in _nodes()
    mine = Registration(get_store(), provider="builtin")
    mine.beat(ok=True)
    assert _nodes() == {mine.node_id}
    row = next(n for n in list_nodes(get_store()) if n.node_id == mine.node_id)
    assert row.process_start == procinfo.process_start_time(os.getpid())


def test_a_reused_pid_is_dead_but_a_live_process_is_kept(lock: TickerLock, live_pid: int) -> None:
    start = procinfo.process_start_time(live_pid)
    assert start is not None
    alive = _row(live_pid, start)
    reused = _row(live_pid, str(int(start) - 1))  # that pid, an earlier process
    unknown = _row(live_pid, None)  # no start recorded: not provably another process
    mine = Registration(get_store(), provider="builtin")
    assert mine.clear_dead_predecessors() == []  # the constructor did it already
    assert _nodes() == {alive, unknown}
    assert reused not in _nodes()


def test_rows_of_another_host_or_home_are_left_alone(lock: TickerLock) -> None:
    pid = _dead_pid()
    other_host = _row(pid, "1", host="elsewhere")
    other_home = _row(pid, "2", home="/srv/another-home")
    Registration(get_store(), provider="builtin")
    assert _nodes() >= {other_host, other_home}


def test_without_the_home_lock_nothing_is_deleted(home: Path) -> None:
    dead = _row(_dead_pid(), "12345")
    # Nobody holds the lock: this process is not the home's active ticker.
    assert Registration(get_store(), provider="builtin").clear_dead_predecessors() == []
    assert dead in _nodes()


def test_a_lock_another_process_holds_proves_nothing_here(home: Path) -> None:
    dead = _row(_dead_pid(), "12345")
    paths.cron_dir(create=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
            str(paths.ticker_lock_path()),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert not TickerLock().try_acquire()  # held, by the other process
        assert Registration(get_store(), provider="builtin").clear_dead_predecessors() == []
        assert dead in _nodes()
    finally:
        holder.kill()
        holder.wait()
