"""Declared jobs (SPEC §14): ``create_job(key=...)`` upserts; ``cronkit apply FILE``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cron import jobs
from cron.errors import DuplicateJobError, JobValueError
from cron.store import get_store, set_store
from tests.cli._helpers import REPO, cli, snapshot, stderr_lines

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_store() -> object:
    set_store(None)
    yield None
    set_store(None)


def _rev(job_id: str) -> object:
    stored = get_store().get(job_id)
    assert stored is not None
    return stored.rev


# -- the API ------------------------------------------------------------------------------------


def test_create_with_an_existing_key_updates_that_job(home: Path) -> None:
    first = jobs.create_job("every 5m", "echo a", key="sync", name="sync", now=T0)
    assert first["key"] == "sync"
    rev = _rev(first["id"])
    again = jobs.create_job(
        "every 5m", "echo a", key="sync", name="sync", now=T0 + timedelta(minutes=2)
    )
    assert again["id"] == first["id"]
    assert _rev(first["id"]) == rev, "unchanged input must write nothing"
    assert len(jobs.list_jobs()) == 1

    # A change that is not the schedule keeps next_run_at.
    renamed = jobs.create_job(
        "every 5m", "echo b", key="sync", name="sync2", now=T0 + timedelta(minutes=2)
    )
    assert renamed["id"] == first["id"] and renamed["name"] == "sync2"
    assert renamed["action"]["command"] == "echo b"
    assert renamed["next_run_at"] == first["next_run_at"]
    # A schedule change recomputes it, from now.
    moved = jobs.create_job(
        "every 1h", "echo b", key="sync", name="sync2", now=T0 + timedelta(minutes=2)
    )
    assert moved["id"] == first["id"]
    assert moved["next_run_at"] == (T0 + timedelta(minutes=62)).isoformat()
    assert len(jobs.list_jobs()) == 1


def test_the_declaration_is_the_whole_job(home: Path) -> None:
    job = jobs.create_job(
        "every 5m", "true", key="k", timeout=30, retry={"max": 2}, catch_up="skip", now=T0
    )
    assert (job["timeout"], job["retry"], job["catch_up"]) == (30, {"max": 2}, "skip")
    bare = jobs.declare_job("every 5m", "true", key="k", now=T0)
    assert bare.verdict == "updated"
    assert set(bare.changed) == {"catch_up", "retry", "timeout"}
    for field in ("timeout", "retry", "catch_up"):
        assert field not in bare.job


def test_enabled_none_leaves_a_paused_job_paused(home: Path) -> None:
    job = jobs.create_job("every 5m", "true", key="k", now=T0)
    jobs.pause_job(job["id"], now=T0)
    assert (
        jobs.declare_job("every 5m", "true", key="k", enabled=None, now=T0).verdict == "unchanged"
    )
    resumed = jobs.declare_job("every 5m", "true", key="k", enabled=True, now=T0)
    assert resumed.changed == ("enabled",) and resumed.job["state"] == "scheduled"


def test_jobs_without_a_key_store_no_key_and_keys_are_unique(home: Path) -> None:
    plain = jobs.create_job("every 5m", "true", now=T0)
    assert "key" not in plain
    keyed = jobs.create_job("every 5m", "true", key="x", now=T0)
    clone = dict(keyed, id="0123456789ab")
    with pytest.raises(DuplicateJobError) as info:
        get_store().insert(clone)
    assert info.value.field == "key"
    for bad in ("", " x", "a\nb", 5, "k" * 201):
        with pytest.raises(JobValueError) as err:
            jobs.create_job("every 5m", "true", key=bad, now=T0)  # type: ignore[arg-type]
        assert err.value.field == "key"


def test_an_unchanged_spent_one_shot_is_not_an_error(home: Path) -> None:
    at = (T0 + timedelta(hours=1)).isoformat()
    job = jobs.create_job(at, "true", key="once", now=T0)
    later = T0 + timedelta(days=1)
    # Its time has passed; the same declaration is still "unchanged", not "in the past".
    assert jobs.declare_job(at, "true", key="once", now=later).verdict == "unchanged"
    assert jobs.get_job(job["id"]) is not None


# -- cronkit apply -----------------------------------------------------------------------------

GOOD = """\
jobs:
  - key: sync
    schedule: every 5m
    command: echo sync
    name: sync
    retry: {max: 2, backoff: 10}
  - key: report
    schedule: "0 9 * * 1-5"
    tz: Europe/Berlin
    command: ./report.sh
    timeout: 120
    catch_up: skip
"""


def _write(tmp_path: Path, text: str, name: str = "jobs.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


LINE = re.compile(r"^(created|updated|unchanged|removed) (\S+) ([0-9a-f]{12})( \(.*\))?$")


def _lines(out: str) -> list[tuple[str, str]]:
    rows = []
    for line in out.splitlines():
        m = LINE.match(line)
        assert m, line
        rows.append((m.group(1), m.group(2)))
    return rows


def test_apply_creates_then_changes_nothing_the_second_time(home: Path, tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    r = cli("apply", str(path))
    assert r.exit_code == 0, r.stderr
    assert _lines(r.stdout) == [("created", "sync"), ("created", "report")]
    by_key = {j["key"]: j for j in jobs.list_jobs()}
    assert by_key["report"]["schedule"]["tz"] == "Europe/Berlin"
    assert by_key["report"]["timeout"] == 120 and by_key["sync"]["retry"]["max"] == 2
    before = snapshot(home)
    r = cli("apply", str(path))
    assert r.exit_code == 0, r.stderr
    assert _lines(r.stdout) == [("unchanged", "sync"), ("unchanged", "report")]
    assert [ln.split()[2] for ln in r.stdout.splitlines()] == [
        by_key["sync"]["id"],
        by_key["report"]["id"],
    ]
    assert snapshot(home) == before, "a second apply of the same file wrote something"


def test_apply_updates_and_prunes_only_keyed_jobs(home: Path, tmp_path: Path) -> None:
    cli("apply", str(_write(tmp_path, GOOD)))
    manual = jobs.create_job("every 1h", "echo manual", name="manual")
    ids = {j["key"]: j["id"] for j in jobs.list_jobs() if j.get("key")}
    changed = _write(
        tmp_path,
        textwrap.dedent("""\
        jobs:
          - key: sync
            schedule: every 10m
            command: echo sync
            name: sync
            retry: {max: 2, backoff: 10}
        """),
        "v2.yaml",
    )
    r = cli("apply", str(changed))
    assert r.stdout.splitlines() == [f"updated sync {ids['sync']} (schedule)"]
    assert jobs.find_job_by_key("report") is not None  # without --prune it stays
    r = cli("apply", str(changed), "--prune")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines() == [
        f"unchanged sync {ids['sync']}",
        f"removed report {ids['report']}",
    ]
    assert jobs.find_job_by_key("report") is None
    assert jobs.get_job(manual["id"]) is not None, "--prune removed a job without a key"


def test_apply_dry_run_writes_nothing(home: Path, tmp_path: Path) -> None:
    cli("apply", str(_write(tmp_path, GOOD)))
    jobs.create_job("every 1h", "true", key="stray")
    before = snapshot(home)
    changed = _write(
        tmp_path,
        GOOD.replace("every 5m", "every 7m")
        + textwrap.indent("- key: new\n  schedule: every 1h\n  command: 'true'\n", "  "),
        "v2.yaml",
    )
    r = cli("apply", str(changed), "--prune", "--dry-run")
    assert r.exit_code == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith("would update sync ") and out[0].endswith("(schedule)")
    assert out[1].startswith("unchanged report ")
    assert out[2] == "would create new (new)"
    assert out[3].startswith("would remove stray ")
    assert snapshot(home) == before


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "jobs:\n  - key: a\n    schedule: every 5m\n    command: 'true'\n"
            "  - key: b\n    schedule: every fortnight\n    command: 'true'\n",
            "entry 1 (key 'b'): schedule:",
        ),
        (
            "jobs:\n  - key: a\n    schedule: every 5m\n    command: 'true'\n    timeout: soon\n",
            "entry 0 (key 'a'): timeout:",
        ),
        (
            "jobs:\n  - key: a\n    schedule: every 5m\n    command: 'true'\n"
            "    retry: {max: -1}\n",
            "entry 0 (key 'a'): retry.max:",
        ),
        (
            "jobs:\n  - key: a\n    schedule: every 5m\n    command: 'true'\n    tz: Mars/Base\n",
            "entry 0 (key 'a'): tz:",
        ),
        (
            "jobs:\n  - key: a\n    schedule: every 5m\n    command: 'true'\n    enabled: maybe\n",
            "entry 0 (key 'a'): enabled:",
        ),
        (
            "jobs:\n  - key: a\n    schedule: every 5m\n    python: 'not a target'\n",
            "entry 0 (key 'a'): python:",
        ),
        ("jobs:\n  - schedule: every 5m\n    command: 'true'\n", "entry 0: key: missing"),
        ("jobs:\n  - key: a\n    schedule: every 5m\n", "entry 0 (key 'a'): command:"),
        (
            "jobs:\n  - key: a\n    schedule: every 5m\n    command: x\n    python: m:f\n",
            "entry 0 (key 'a'): command:",
        ),
        (
            "jobs:\n  - key: a\n    schedule: every 5m\n    command: x\n    colour: red\n",
            "entry 0 (key 'a'): colour: unknown field",
        ),
        (
            "jobs:\n  - key: a\n    schedule: every 5m\n    command: x\n    cwd: /no/such/dir\n",
            "entry 0 (key 'a'): cwd: invalid cwd '/no/such/dir': no such directory",
        ),
        (
            "jobs:\n  - key: a\n    schedule: every 5m\n    command: x\n    env: {'1X': y}\n",
            "entry 0 (key 'a'): env:",
        ),
        (
            "jobs:\n  - key: a\n    schedule: every 5m\n    command: x\n"
            "  - key: a\n    schedule: every 5m\n    command: y\n",
            "entry 1 (key 'a'): key: also used",
        ),
        (
            "jobs:\n  - key: a\n    schedule: '2020-01-01T00:00'\n    command: x\n",
            "entry 0 (key 'a'): schedule:",
        ),
        ("jobs: [\n", "YAML syntax error"),
        ("- key: a\n", "expected a mapping with one key, 'jobs'"),
    ],
)
def test_a_bad_file_changes_nothing(home: Path, tmp_path: Path, body: str, expected: str) -> None:
    cli("apply", str(_write(tmp_path, GOOD)))
    before = snapshot(home)
    r = cli("apply", str(_write(tmp_path, body, "bad.yaml")), "--prune")
    assert r.exit_code == 2, r.stdout
    [line] = stderr_lines(r)
    assert expected in line, line
    assert snapshot(home) == before


def test_apply_of_a_missing_file_is_bad_input(home: Path, tmp_path: Path) -> None:
    r = cli("apply", str(tmp_path / "nope.yaml"))
    assert r.exit_code == 2
    [line] = stderr_lines(r)
    assert "nope.yaml" in line


# -- the README's embedding snippet ---------------------------------------------------------------


def _embedding_snippet() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Embedding") :]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None
    return block.group(1)


def test_readme_embedding_snippet_run_twice_keeps_one_job(home: Path, tmp_path: Path) -> None:
    snippet = _embedding_snippet()
    assert 'key="sync"' in snippet
    app = tmp_path / "app"
    (app / "myapp").mkdir(parents=True)
    (app / "myapp" / "__init__.py").write_text("", encoding="utf-8")
    (app / "myapp" / "tasks.py").write_text(
        "def sync(job):\n    return 'synced'\n", encoding="utf-8"
    )
    env = dict(
        os.environ, CRONKIT_HOME=str(home), PYTHONPATH=os.pathsep.join([str(app), str(REPO)])
    )
    for _ in range(2):  # a host restart runs the same code again
        proc = subprocess.run(
            [sys.executable, "-c", snippet],
            env=env,
            cwd=app,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
    set_store(None)
    listed = jobs.list_jobs()
    assert [(j["key"], j["name"]) for j in listed] == [("sync", "sync")]


def test_apply_sets_where_a_command_runs_relative_to_the_file(home: Path, tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    path = _write(
        tmp_path,
        "jobs:\n  - key: w\n    schedule: every 5m\n    command: ./go.sh\n"
        "    cwd: scripts\n    env: {PORT: 8080, MODE: fast}\n",
    )
    r = cli("apply", str(path))
    assert r.exit_code == 0, r.stderr
    job = jobs.find_job_by_key("w")
    assert job is not None
    assert job["cwd"] == str(tmp_path / "scripts")
    assert job["env"] == {"PORT": "8080", "MODE": "fast"}
    before = snapshot(home)
    again = cli("apply", str(path))
    assert _lines(again.stdout) == [("unchanged", "w")]
    assert snapshot(home) == before
    # Dropping the fields from the declaration removes them: the declaration is the whole job.
    _write(tmp_path, "jobs:\n  - key: w\n    schedule: every 5m\n    command: ./go.sh\n")
    r = cli("apply", str(path))
    assert _lines(r.stdout) == [("updated", "w")]
    job = jobs.find_job_by_key("w")
    assert job is not None and "cwd" not in job and "env" not in job
