"""Store safety with real files and real processes (SPEC §1, §3).

- A ``jobs.json`` that cannot be used (bad JSON, wrong shape, unsupported
  version, not UTF-8) makes every operation raise ``StoreCorruptError`` naming
  the file; the file stays byte-for-byte (and mtime) untouched and nothing is
  written — through every mutating API and the tick.
- A write that fails midway (fsync or rename raising) leaves the previous file
  intact and readable, and no temp file behind.
- Files are 0600 and directories 0700 (home included), whatever the umask.
- Two processes doing 200 read-modify-writes each lose no update.
- A lock held too long by another process is a ``StoreLockTimeout``.

The unusable-file and failed-write tests are about ``jobs.json`` itself and pin
the JSON store (fixture ``json_store``); modes and the two processes hold on
whichever store the suite runs with.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cron import executions, jobs, paths, scheduler
from cron.errors import StoreCorruptError, StoreLockTimeout
from cron.store import JsonJobStore, get_store, set_store
from tests.characterization.actions import OK
from tests.support.stores import backend, store_file

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
FAKE_ID = "abcdef012345"
PY_OK = {"kind": "python", "target": OK}


@pytest.fixture(autouse=True)
def default_store() -> Iterator[None]:
    set_store(None)
    yield
    set_store(None)


def _cron_files(cron: Path) -> dict[str, bytes]:
    """Every non-lock file under the cron dir with its bytes (locks carry no data)."""
    out: dict[str, bytes] = {}
    if not cron.exists():
        return out
    for p in sorted(cron.rglob("*")):
        if p.is_file() and not p.name.endswith(".lock"):
            out[str(p.relative_to(cron))] = p.read_bytes()
    return out


def _temp_files(cron: Path) -> list[str]:
    # A database store may never have made the cron dir: then it holds no temp file either.
    if not cron.exists():
        return []
    return sorted(p.name for p in cron.iterdir() if p.name.endswith(".tmp"))


# -- unusable files -------------------------------------------------------------

BAD_FILES: dict[str, tuple[bytes, str]] = {
    "bad-json": (b'{"version": 1, "jobs": [', "line 1 column"),
    "truncated-object": (b'{"version": 1, "jobs": [{"id": "abc"', "line 1 column"),
    "empty-file": (b"", "line 1 column 1"),
    "a-list": (b"[]", "expected a JSON object"),
    "jobs-not-a-list": (b'{"version": 1, "jobs": {}}', "'jobs' must be a list"),
    "job-without-id": (b'{"version": 1, "jobs": [{"name": "x"}]}', "'jobs' must be a list"),
    "version-2": (b'{"version": 2, "jobs": []}', "unsupported store version 2"),
    "no-version": (b'{"jobs": []}', "unsupported store version None"),
    "not-utf8": (b'{"version": 1, "jobs": ["\xff\xfe"]}', "not UTF-8"),
}


def _mark(job_id: str) -> Any:
    return jobs.mark_job_run(job_id, "0" * 32, success=True, now=T0)


OPERATIONS: dict[str, Callable[[str], Any]] = {
    "create_job": lambda _id: jobs.create_job("every 1h", "true", now=T0),
    "update_job": lambda job_id: jobs.update_job(job_id, name="renamed", now=T0),
    "remove_job": lambda job_id: jobs.remove_job(job_id),
    "pause_job": lambda job_id: jobs.pause_job(job_id, now=T0),
    "resume_job": lambda job_id: jobs.resume_job(job_id, now=T0),
    "claim_job_for_fire": lambda job_id: jobs.claim_job_for_fire(job_id, now=T0),
    "claim_job_for_fire_force": lambda job_id: jobs.claim_job_for_fire(job_id, now=T0, force=True),
    "claim_due_jobs": lambda _id: jobs.claim_due_jobs(T0 + timedelta(days=1)),
    "mark_job_run": _mark,
    "refresh_claim": lambda job_id: jobs.refresh_claim(job_id, "0" * 32, now=T0),
    "tick": lambda _id: scheduler.tick(now=T0 + timedelta(days=1), sync=True),
    "get_job": lambda job_id: jobs.get_job(job_id),
    "list_jobs": lambda _id: jobs.list_jobs(),
    "get_due_jobs": lambda _id: jobs.get_due_jobs(T0 + timedelta(days=1)),
}


@pytest.mark.usefixtures("json_store")
@pytest.mark.parametrize("op", sorted(OPERATIONS))
@pytest.mark.parametrize("bad", sorted(BAD_FILES))
def test_unusable_store_raises_and_is_never_written(home: Path, bad: str, op: str) -> None:
    content, detail = BAD_FILES[bad]
    cron = paths.cron_dir(create=True)
    path = paths.jobs_path()
    path.write_bytes(content)
    old = os.stat(path)
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns - 10**9))  # a distinct, older mtime
    before = os.stat(path)
    files_before = _cron_files(cron)

    with pytest.raises(StoreCorruptError) as info:
        OPERATIONS[op](FAKE_ID)

    msg = str(info.value)
    assert str(path) in msg, msg
    assert detail in msg, msg
    assert "\n" not in msg
    assert info.value.path == path
    after = os.stat(path)
    assert path.read_bytes() == content
    assert (after.st_mtime_ns, after.st_ino, after.st_size) == (
        before.st_mtime_ns,
        before.st_ino,
        before.st_size,
    )
    assert _temp_files(cron) == []
    # Nothing else was written either: no ledger, no output, no heartbeat.
    assert _cron_files(cron) == files_before


@pytest.mark.usefixtures("json_store")
def test_corrupt_store_does_not_poison_a_later_fixed_file(home: Path) -> None:
    paths.cron_dir(create=True)
    path = paths.jobs_path()
    path.write_text("{oops", encoding="utf-8")
    with pytest.raises(StoreCorruptError):
        jobs.list_jobs()
    path.write_text(json.dumps({"version": 1, "jobs": []}), encoding="utf-8")
    assert jobs.list_jobs() == []
    job = jobs.create_job("every 1h", "true", now=T0)
    assert [j["id"] for j in jobs.list_jobs()] == [job["id"]]


@pytest.mark.usefixtures("json_store")
def test_corruption_after_a_cached_read_is_still_detected(home: Path) -> None:
    """The lock-free read cache must notice the file changed underneath it."""
    job = jobs.create_job("every 1h", "true", now=T0)
    assert jobs.get_job(job["id"]) is not None  # warm the cache
    path = paths.jobs_path()
    path.write_bytes(b"{not json at all}")
    with pytest.raises(StoreCorruptError):
        jobs.get_job(job["id"])
    with pytest.raises(StoreCorruptError):
        jobs.update_job(job["id"], name="x", now=T0)
    assert path.read_bytes() == b"{not json at all}"


def test_a_reader_racing_our_own_write_uses_its_contents_not_a_parse(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the rename and the end of a write (the directory fsync), readers in
    this process see the new file; they take its contents from the writer instead
    of parsing the whole store again. Another process's write is still parsed."""
    store = JsonJobStore()
    set_store(store)
    job = jobs.create_job("every 1h", "true", name="original", now=T0)
    parses: list[int] = []
    real_parse = store._parse

    def counting_parse(data: bytes) -> list[dict[str, Any]]:
        parses.append(1)
        return real_parse(data)

    monkeypatch.setattr(store, "_parse", counting_parse)
    seen: dict[str, Any] = {}

    def write_then_read(target: Path, data: bytes) -> None:
        paths.atomic_write_bytes(target, data)  # renamed into place; we have not returned yet
        reader = threading.Thread(target=lambda: seen.update(job=jobs.get_job(job["id"])))
        reader.start()
        reader.join(10)

    store.write_bytes = write_then_read
    jobs.update_job(job["id"], name="renamed", now=T0)
    assert seen["job"]["name"] == "renamed"
    assert parses == []
    store.write_bytes = paths.atomic_write_bytes
    doc = json.loads(paths.jobs_path().read_text(encoding="utf-8"))
    doc["jobs"][0]["name"] = "outside"
    paths.atomic_write_bytes(paths.jobs_path(), json.dumps(doc).encode())
    assert jobs.get_job(job["id"])["name"] == "outside"  # type: ignore[index]
    assert parses == [1]


# -- a write that fails midway --------------------------------------------------


def _raise_oserror(*_a: Any, **_k: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device (injected)")


def _raise_interrupt(*_a: Any, **_k: Any) -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("target", "fault", "exc_type"),
    [
        ("replace", _raise_oserror, OSError),
        ("fsync", _raise_oserror, OSError),
        ("replace", _raise_interrupt, KeyboardInterrupt),
    ],
    ids=["rename-raises", "fsync-raises", "interrupted-before-rename"],
)
@pytest.mark.usefixtures("json_store")
@pytest.mark.parametrize("op", ["update", "create", "claim", "tick"])
def test_failed_write_leaves_previous_file_intact(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    fault: Callable[..., None],
    exc_type: type[BaseException],
    op: str,
) -> None:
    job = jobs.create_job("every 1h", PY_OK, name="original", now=T0)
    cron = paths.cron_dir()
    path = paths.jobs_path()
    before = path.read_bytes()
    due = T0 + timedelta(hours=1)

    with monkeypatch.context() as m:
        m.setattr(os, target, fault)
        with pytest.raises(exc_type):
            if op == "update":
                jobs.update_job(job["id"], name="changed", now=T0)
            elif op == "create":
                jobs.create_job("every 2h", "true", now=T0)
            elif op == "claim":
                jobs.claim_job_for_fire(job["id"], now=due)
            else:
                scheduler.tick(now=due, sync=True)

    assert path.read_bytes() == before
    assert _temp_files(cron) == []
    # Readable, and the failed change is not visible through the read cache.
    assert [j["name"] for j in jobs.list_jobs()] == ["original"]
    assert json.loads(path.read_text(encoding="utf-8"))["jobs"][0]["fire_claim"] is None
    # The claim's ledger row is only written after the store write succeeds.
    assert executions.list_executions(limit=None) == []
    # The store is fully usable again afterwards.
    token = jobs.claim_job_for_fire(job["id"], now=due)
    assert token is not None
    assert jobs.mark_job_run(job["id"], token, success=True, now=due)


def test_failing_write_seam_leaves_previous_file(home: Path) -> None:
    """``JsonJobStore.write_bytes`` is the crash seam: a write that dies after a partial temp."""
    store = JsonJobStore()
    set_store(store)
    job = jobs.create_job("every 1h", "true", name="original", now=T0)
    path = paths.jobs_path()
    before = path.read_bytes()

    def crash(target: Path, data: bytes) -> None:
        tmp = target.with_name(f".{target.name}.crash.tmp")
        tmp.write_bytes(data[: len(data) // 2])
        try:
            raise OSError(errno.EIO, "I/O error (injected)")
        finally:
            tmp.unlink()

    store.write_bytes = crash
    with pytest.raises(OSError, match="injected"):
        jobs.update_job(job["id"], name="changed", now=T0)
    assert path.read_bytes() == before
    assert jobs.get_job(job["id"])["name"] == "original"  # type: ignore[index]
    store.write_bytes = paths.atomic_write_bytes
    assert jobs.update_job(job["id"], name="changed", now=T0)["name"] == "changed"
    assert jobs.get_job(job["id"])["name"] == "changed"  # type: ignore[index]


# -- modes ------------------------------------------------------------------------


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask-022", "umask-000"])
def test_files_are_0600_and_dirs_0700_whatever_the_umask(home: Path, umask: int) -> None:
    """The first call creates the whole tree, ``<home>`` included (SPEC §1)."""
    assert not home.exists()
    old = os.umask(umask)
    try:
        job = jobs.create_job("every 1h", PY_OK, now=T0)
        assert scheduler.tick(now=T0 + timedelta(hours=1), sync=True) == 1
        jobs.record_ticker_heartbeat(success=True, now=T0)
        jobs.record_ticker_error("RuntimeError: boom", now=T0)
    finally:
        os.umask(old)
    cron = paths.cron_dir()
    out_dir = paths.output_dir()
    (run_output,) = list((out_dir / job["id"]).iterdir())
    dirs = [home, cron, out_dir, out_dir / job["id"]]
    kind = backend()
    if kind == "json":
        store_files = [
            paths.jobs_path(),
            paths.jobs_path().with_name("jobs.json.lock"),
            paths.executions_path(),
        ]
        side: str | None = "executions.db-"
    elif kind == "sqlite":  # jobs and the ledger in one database file
        store_files = [store_file()]
        side = store_file().name + "-"
    else:  # jobs and the ledger in the database server: no store file in the home
        store_files, side = [], None
    files = [
        *store_files,
        paths.tick_lock_path(),
        paths.heartbeat_path(),
        paths.last_success_path(),
        paths.last_error_path(),
        run_output,
    ]
    files += [p for p in cron.iterdir() if side is not None and p.name.startswith(side)]
    assert {str(d): oct(_mode(d)) for d in dirs} == {str(d): "0o700" for d in dirs}
    assert {str(f): oct(_mode(f)) for f in files} == {str(f): "0o600" for f in files}
    # Nothing else in the tree is more open than that.
    for p in home.rglob("*"):
        assert _mode(p) & 0o077 == 0, f"{p} is {oct(_mode(p))}"


# -- real processes -----------------------------------------------------------------

_RMW_CHILD = """
import sys, time
from pathlib import Path
from cron import jobs
from cron.store import get_store
go, n = Path(sys.argv[1]), int(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
first = get_store().scan(limit=1)[0].job["id"]
for i in range(n):
    while True:
        cur = get_store().get(first)
        cur.job["name"] = str(int(cur.job["name"]) + 1)
        if get_store().swap(first, cur.rev, cur.job) is not None:
            break
    jobs.create_job("every 1h", "true", name=f"{sys.argv[3]}-{i}")
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    return env


def test_two_processes_200_read_modify_writes_each_lose_nothing(home: Path, tmp_path: Path) -> None:
    counter = jobs.create_job("every 1h", "true", name="0", now=T0)
    go = tmp_path / "go"  # not in the home: a database store writes no file there
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RMW_CHILD, str(go), "200", tag],
            cwd=REPO,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for tag in ("a", "b")
    ]
    time.sleep(0.3)  # both children are importing; release them together
    go.touch()
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    listed = jobs.list_jobs()
    assert listed[0]["id"] == counter["id"]
    assert listed[0]["name"] == "400"
    names = sorted(j["name"] for j in listed[1:])
    assert names == sorted([f"a-{i}" for i in range(200)] + [f"b-{i}" for i in range(200)])
    assert len({j["id"] for j in listed}) == 401
    assert _temp_files(paths.cron_dir()) == []


_HOLD_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def test_lock_held_by_another_process_times_out(home: Path) -> None:
    store = JsonJobStore(lock_timeout=0.2)
    set_store(store)
    job = jobs.create_job("every 1h", "true", now=T0)
    before = paths.jobs_path().read_bytes()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(store.lock_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(StoreLockTimeout) as info:
            jobs.update_job(job["id"], name="blocked", now=T0)
        waited = time.monotonic() - started
        assert isinstance(info.value, TimeoutError)
        assert 0.2 <= waited < 3.0
        assert str(paths.jobs_path()) in str(info.value)
        with pytest.raises(StoreLockTimeout):
            jobs.claim_job_for_fire(job["id"], now=T0 + timedelta(hours=1))
        # Lock-free reads still work while a writer holds the lock.
        assert jobs.get_job(job["id"])["name"] == job["name"]  # type: ignore[index]
        assert paths.jobs_path().read_bytes() == before
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    assert jobs.update_job(job["id"], name="unblocked", now=T0)["name"] == "unblocked"
    assert get_store() is store
