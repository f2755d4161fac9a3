"""Runners: command and python built-ins, validation, registration, entry points."""

from __future__ import annotations

import ctypes
import os
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cron import runners
from cron.errors import ActionError
from cron.runners import RunContext, RunResult

CTX = RunContext(timeout=10, scheduled_at="2026-11-25T03:10:00+00:00")


def _cmd(command: str, job_id: str = "abc123abc123") -> dict[str, Any]:
    return {"id": job_id, "action": {"kind": "command", "command": command}}


def _py(target: str) -> dict[str, Any]:
    return {"id": "py0000000000", "action": {"kind": "python", "target": target}}


@pytest.fixture
def subreaper() -> Iterator[None]:
    """Make this process adopt orphaned grandchildren, as a container's pid 1 would.

    Without it, the zombie of a killed grandchild belongs to the real init,
    which may never reap it (some sandboxes run a pid 1 that does not), and a
    zombie still counts as a member of its process group.
    """
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_CHILD_SUBREAPER is Linux-only")
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_child_subreaper = 36
    assert libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) == 0
    yield
    libc.prctl(pr_set_child_subreaper, 0, 0, 0, 0)


@pytest.fixture
def mods(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway importable package ``ckjobs`` with python job targets."""
    pkg = tmp_path / "mods" / "ckjobs"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "tasks.py").write_text(
        textwrap.dedent(
            """
            import time

            def hello(job):
                return "hello " + job["id"]

            def number(job):
                return 42

            def nothing(job):
                return None

            def boom(job):
                raise RuntimeError("kaboom")

            def slow(job):
                time.sleep(3)
                return "late"

            def leave(job):
                raise SystemExit(3)

            class Obj:
                @staticmethod
                def method(job):
                    return "nested"

            obj = Obj()
            NOT_CALLABLE = 5
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    monkeypatch.delitem(sys.modules, "ckjobs", raising=False)
    monkeypatch.delitem(sys.modules, "ckjobs.tasks", raising=False)
    return pkg


# --- command ---------------------------------------------------------------


def test_command_output_merged_and_env(home: Path) -> None:
    res = runners.run_action(
        _cmd('echo out; echo err >&2; echo "$CRONKIT_JOB_ID $CRONKIT_SCHEDULED_AT $EXTRA"; pwd'),
        RunContext(timeout=10, scheduled_at="2026-11-25T03:10:00+00:00", env={"EXTRA": "x1"}),
    )
    assert res.status == "ok", res
    assert res.exit_code == 0 and res.error is None
    lines = res.output.splitlines()
    assert lines[:3] == ["out", "err", "abc123abc123 2026-11-25T03:10:00+00:00 x1"]
    assert Path(lines[3]).resolve() == home.resolve()


def test_command_stdin_is_devnull(home: Path) -> None:
    res = runners.run_action(_cmd("cat; echo done"), CTX)
    assert (res.status, res.output) == ("ok", "done\n")


def test_command_nonzero_exit(home: Path) -> None:
    res = runners.run_action(_cmd("echo partial; exit 3"), CTX)
    assert (res.status, res.error, res.exit_code) == ("error", "exit status 3", 3)
    assert res.output == "partial\n"


def test_command_killed_by_signal(home: Path) -> None:
    res = runners.run_action(_cmd("kill -USR1 $$"), CTX)
    assert res.status == "error"
    assert res.error == "killed by signal SIGUSR1"
    assert res.exit_code is not None and res.exit_code < 0


def test_command_timeout_kills_whole_group(home: Path, subreaper: None) -> None:
    job = _cmd("echo started; echo $$ > pgid; sleep 60 & sleep 60")
    t0 = time.monotonic()
    res = runners.run_action(job, RunContext(timeout=1, scheduled_at=None))
    elapsed = time.monotonic() - t0
    assert res.status == "timeout", res
    assert "timed out after 1s" in (res.error or "")
    assert res.output.startswith("started")
    assert elapsed < runners.TERM_GRACE, "SIGTERM should have been enough"
    pgid = int((home / "pgid").read_text())
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


def test_command_timeout_escalates_to_sigkill(
    home: Path, subreaper: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runners, "TERM_GRACE", 0.5)
    job = _cmd("trap '' TERM; echo $$ > pgid; (trap '' TERM; sleep 60) & sleep 60")
    res = runners.run_action(job, RunContext(timeout=0.5, scheduled_at=None))
    assert res.status == "timeout"
    pgid = int((home / "pgid").read_text())
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


def test_command_background_holding_pipe_does_not_hang(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runners, "DRAIN_GRACE", 0.3)
    t0 = time.monotonic()
    res = runners.run_action(_cmd("echo $$ > pgid; sleep 30 & echo main"), CTX)
    assert time.monotonic() - t0 < 5
    assert res.status == "ok"
    assert res.output.startswith("main\n")
    assert "background process" in res.output
    os.killpg(int((home / "pgid").read_text()), 9)


def test_command_output_capped_keeps_tail(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    res = runners.run_action(
        _cmd("head -c 3000000 /dev/zero | tr '\\0' a; echo; echo THE-END"), CTX
    )
    assert res.status == "ok"
    assert res.output.startswith("[cronkit: output truncated")
    assert res.output.endswith("THE-END\n")
    assert len(res.output.encode()) <= runners.MAX_OUTPUT_BYTES + 200


def test_command_keyboard_interrupt_kills_group(
    home: Path, subreaper: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real_pump = runners._Pipe.pump

    def pump(self: runners._Pipe, wait: float) -> bool:
        calls["n"] += 1
        if (home / "pgid").exists():
            raise KeyboardInterrupt
        return real_pump(self, min(wait, 0.05))

    monkeypatch.setattr(runners._Pipe, "pump", pump)
    with pytest.raises(KeyboardInterrupt):
        runners.run_action(_cmd("echo $$ > pgid.tmp; mv pgid.tmp pgid; sleep 60"), CTX)
    pgid = int((home / "pgid").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


# --- python ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "output"),
    [
        ("ckjobs.tasks:hello", "hello py0000000000"),
        ("ckjobs.tasks:number", "42"),
        ("ckjobs.tasks:nothing", ""),
        ("ckjobs.tasks:obj.method", "nested"),
    ],
)
def test_python_return_values(home: Path, mods: Path, target: str, output: str) -> None:
    for ctx in (CTX, RunContext(timeout=None, scheduled_at=None)):
        res = runners.run_action(_py(target), ctx)
        assert (res.status, res.output, res.error) == ("ok", output, None)


def test_python_exception_is_error(home: Path, mods: Path) -> None:
    for ctx in (CTX, RunContext(timeout=0, scheduled_at=None)):
        res = runners.run_action(_py("ckjobs.tasks:boom"), ctx)
        assert res.status == "error"
        assert res.error == "RuntimeError: kaboom"
        assert "Traceback" in res.output


def test_python_import_failure_at_run_time_is_error(home: Path, mods: Path) -> None:
    res = runners.run_action(_py("ckjobs.nope:func"), CTX)
    assert res.status == "error"
    assert res.error is not None and res.error.startswith("ModuleNotFoundError")


def test_python_timeout(home: Path, mods: Path) -> None:
    t0 = time.monotonic()
    res = runners.run_action(_py("ckjobs.tasks:slow"), RunContext(timeout=0.3, scheduled_at=None))
    assert time.monotonic() - t0 < 2
    assert res.status == "timeout"
    assert "cannot be killed" in (res.error or "")


def test_python_base_exception_propagates(home: Path, mods: Path) -> None:
    for ctx in (CTX, RunContext(timeout=None, scheduled_at=None)):
        with pytest.raises(SystemExit):
            runners.run_action(_py("ckjobs.tasks:leave"), ctx)


# --- validation ------------------------------------------------------------


def test_validate_normalises_command_string() -> None:
    assert runners.validate_action("echo hi") == {"kind": "command", "command": "echo hi"}
    action = {"kind": "python", "target": "a.b:c.d"}
    assert runners.validate_action(action) == action
    assert runners.validate_action(action) is not action


@pytest.mark.parametrize(
    "action",
    [
        "",
        "   ",
        {"kind": "command", "command": ""},
        {"kind": "command", "command": ["echo", "hi"]},
        {"kind": "command"},
        {"kind": "command", "command": "echo \x00"},
        {"command": "echo hi"},
        {"kind": "nosuchkind"},
        {"kind": 3},
        {"kind": "python", "target": "pkg.mod.func"},
        {"kind": "python", "target": "pkg.mod:"},
        {"kind": "python", "target": ":func"},
        {"kind": "python", "target": "pkg mod:func"},
        {"kind": "python", "target": None},
        {"kind": "python"},
        42,
        None,
        ["echo"],
    ],
)
def test_bad_actions_rejected(action: Any) -> None:
    with pytest.raises(ActionError):
        runners.validate_action(action)


def test_unknown_kind_lists_known() -> None:
    with pytest.raises(
        ActionError, match="unknown runner kind 'nosuchkind'; known: command, python"
    ):
        runners.get_runner("nosuchkind")


def test_check_import(mods: Path) -> None:
    ok = {"kind": "python", "target": "ckjobs.tasks:obj.method"}
    assert runners.validate_action(ok, check_import=True) == ok
    # Without check_import a well-formed target is not imported.
    runners.validate_action({"kind": "python", "target": "no_such_pkg_zz.mod:f"})
    with pytest.raises(ActionError, match=r"no_such_pkg_zz\.mod:f.*ModuleNotFoundError"):
        runners.validate_action(
            {"kind": "python", "target": "no_such_pkg_zz.mod:f"}, check_import=True
        )
    with pytest.raises(ActionError, match="AttributeError"):
        runners.validate_action(
            {"kind": "python", "target": "ckjobs.tasks:missing"}, check_import=True
        )
    with pytest.raises(ActionError, match="not callable"):
        runners.validate_action(
            {"kind": "python", "target": "ckjobs.tasks:NOT_CALLABLE"}, check_import=True
        )


def test_run_action_with_invalid_action_is_error_result(home: Path) -> None:
    res = runners.run_action({"id": "x", "action": {"kind": "command", "command": 5}}, CTX)
    assert res.status == "error"
    assert "'command' must be a string" in (res.error or "")


# --- registration and entry points -------------------------------------------


def test_register_runner(home: Path) -> None:
    seen: list[tuple[dict[str, Any], RunContext]] = []

    def agent(job: dict[str, Any], ctx: RunContext) -> RunResult:
        seen.append((job, ctx))
        return RunResult("ok", "agent says " + job["action"]["prompt"], None)

    runners.register_runner("agent", agent)
    try:
        assert runners.get_runner("agent") is agent
        action = {"kind": "agent", "prompt": "hi"}
        assert runners.validate_action(action) == action
        res = runners.run_action({"id": "j", "action": action}, CTX)
        assert res == RunResult("ok", "agent says hi", None)
        assert seen[0][1] is CTX
    finally:
        runners.unregister_runner("agent")
    with pytest.raises(ActionError):
        runners.get_runner("agent")


def test_register_runner_rejects_builtin_and_junk() -> None:
    with pytest.raises(ValueError, match="built in"):
        runners.register_runner("command", lambda job, ctx: RunResult("ok", "", None))
    with pytest.raises(ValueError):
        runners.register_runner("", lambda job, ctx: RunResult("ok", "", None))
    with pytest.raises(TypeError):
        runners.register_runner("x", "not callable")  # type: ignore[arg-type]


def test_runner_that_raises_or_returns_junk(home: Path) -> None:
    def raising(job: dict[str, Any], ctx: RunContext) -> RunResult:
        raise ValueError("bad")

    def junk(job: dict[str, Any], ctx: RunContext) -> RunResult:
        return "ok"  # type: ignore[return-value]

    runners.register_runner("raising", raising)
    runners.register_runner("junk", junk)
    try:
        res = runners.run_action({"id": "j", "action": {"kind": "raising"}}, CTX)
        assert (res.status, res.error) == ("error", "ValueError: bad")
        res = runners.run_action({"id": "j", "action": {"kind": "junk"}}, CTX)
        assert res.status == "error" and "expected RunResult" in (res.error or "")
    finally:
        runners.unregister_runner("raising")
        runners.unregister_runner("junk")


def test_entry_point_runner_discovered(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "ck_ep_plugin").mkdir(parents=True)
    (site / "ck_ep_plugin" / "__init__.py").write_text(
        textwrap.dedent(
            """
            from cron.runners import RunResult

            def echo_runner(job, ctx):
                return RunResult("ok", "ep:" + job["action"]["text"], None)

            NOT_A_RUNNER = 1
            """
        )
    )
    dist = site / "ck_ep_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ck-ep-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[cronkit.runners]\n"
        "ep_echo = ck_ep_plugin:echo_runner\n"
        "ep_broken = ck_ep_plugin_missing:thing\n"
        "ep_junk = ck_ep_plugin:NOT_A_RUNNER\n"
    )
    with pytest.raises(ActionError):
        runners.get_runner("ep_echo")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "ck_ep_plugin", raising=False)
    monkeypatch.setattr(runners, "_entry_point_runners", {})

    fn = runners.get_runner("ep_echo")
    assert runners.get_runner("ep_echo") is fn
    res = runners.run_action({"id": "j", "action": {"kind": "ep_echo", "text": "hi"}}, CTX)
    assert res == RunResult("ok", "ep:hi", None)
    with pytest.raises(ActionError, match="ep_echo"):
        runners.get_runner("nosuch")
    with pytest.raises(ActionError, match="failed to load: ModuleNotFoundError"):
        runners.get_runner("ep_broken")
    with pytest.raises(ActionError, match="did not load a callable"):
        runners.get_runner("ep_junk")


def test_runs_are_thread_safe(home: Path) -> None:
    results: list[RunResult] = []

    def go(i: int) -> None:
        results.append(runners.run_action(_cmd(f"echo {i}", job_id=f"job{i}"), CTX))

    threads = [threading.Thread(target=go, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.output for r in results) == [f"{i}\n" for i in range(6)]
