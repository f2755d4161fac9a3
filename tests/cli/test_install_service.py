"""`cronkit install-service` and cron.service: the systemd unit that runs the gateway."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cron.errors import ServiceUnitExistsError
from cron.service import enable_command, install_unit, render_unit, unit_path
from tests.cli._helpers import cli, stderr_lines

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

USER_UNIT = """\
# cronkit gateway for CRONKIT_HOME=/srv/cron home (written by 'cronkit install-service')
[Unit]
Description=cronkit gateway (/srv/cron home)

[Service]
Type=simple
Environment="CRONKIT_HOME=/srv/cron home"
Environment=TZ=Europe/Berlin
ExecStart=/opt/py/bin/python3 -m cron gateway --grace 45
Restart=on-failure
RestartSec=5
RestartPreventExitStatus=2
# mixed: 'systemctl stop' sends SIGTERM to the gateway alone, not to every job
# it runs (control-group would). The gateway stops taking fires, waits up to
# --grace (45s) for running jobs, then ends their process groups itself
# (SIGTERM, SIGKILL 5 s later) and records them interrupted; whatever is left
# in the unit when it exits, or at TimeoutStopSec, gets SIGKILL from systemd.
KillMode=mixed
TimeoutStopSec=65

[Install]
WantedBy=default.target
"""


@pytest.fixture
def user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private $HOME, so a user unit lands under tmp_path."""
    h = tmp_path / "user-home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return h


def _lines(text: str) -> list[str]:
    return text.splitlines()


# -- the unit text --------------------------------------------------------------------------------


def test_user_unit_text() -> None:
    text = render_unit(
        user=True,
        home=Path("/srv/cron home"),
        python="/opt/py/bin/python3",
        grace=45,
        tz="Europe/Berlin",
    )
    assert text == USER_UNIT


def test_unit_runs_this_interpreter_for_this_home(home: Path) -> None:
    lines = _lines(render_unit(user=True))
    assert f"Environment=CRONKIT_HOME={home}" in lines
    assert f"ExecStart={sys.executable} -m cron gateway --grace 30" in lines
    assert "Environment=TZ=UTC" in lines  # the caller's $TZ (the home fixture sets UTC)
    assert "Type=simple" in lines and "Restart=on-failure" in lines
    assert "KillMode=mixed" in lines
    (timeout,) = [x for x in lines if x.startswith("TimeoutStopSec=")]
    assert int(timeout.split("=")[1]) > 30 + 5  # the grace, then the 5 s SIGTERM->SIGKILL


def test_no_tz_line_without_a_zone(home: Path) -> None:
    assert not any(x.startswith("Environment=TZ") for x in _lines(render_unit(user=True, tz="")))


def test_system_unit_waits_for_the_network_and_runs_as_the_homes_owner(tmp_path: Path) -> None:
    owned = tmp_path / "owned-home"
    owned.mkdir()
    if os.geteuid() == 0:
        os.chown(owned, 65534, 65534)  # as root, give the home to a non-root user
    owner = pwd.getpwuid(owned.stat().st_uid).pw_name
    lines = _lines(render_unit(user=False, home=owned, python="/usr/bin/python3"))
    assert f"User={owner}" in lines
    assert "After=network-online.target" in lines and "Wants=network-online.target" in lines
    assert "WantedBy=multi-user.target" in lines


def test_awkward_paths_are_quoted_for_systemd() -> None:
    text = render_unit(user=True, home=Path('/h/100% "odd" $HOME'), python="/p y/python", tz="")
    lines = _lines(text)
    assert 'Environment="CRONKIT_HOME=/h/100%% \\"odd\\" $$HOME"' in lines
    assert 'ExecStart="/p y/python" -m cron gateway --grace 30' in lines


# -- systemd-analyze verify -----------------------------------------------------------------------


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed here")
@pytest.mark.parametrize("user", [True, False], ids=["user", "system"])
@pytest.mark.parametrize("home_dir", ["plain", "with space and 100%"])
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path, user: bool, home_dir: str) -> None:
    assert SYSTEMD_ANALYZE is not None
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    unit = unit_dir / "cronkit.service"
    unit.write_text(render_unit(user=user, home=tmp_path / home_dir, grace=12.5))
    # --user needs a running user manager; the unit's syntax is the same either way.
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=unit_dir,
    )
    assert done.returncode == 0, done.stderr
    # verify exits 0 on keys it ignores; any line about our file is a problem.
    assert [x for x in done.stderr.splitlines() if "cronkit.service" in x] == []


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed here")
def test_systemd_analyze_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    unit = tmp_path / "cronkit.service"
    unit.write_text(
        render_unit(user=True, python="/nonexistent/python").replace(
            "KillMode=mixed", "KillMode=sometimes"
        )
    )
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    complaints = [x for x in done.stderr.splitlines() if "cronkit.service" in x]
    assert any("kill mode" in x for x in complaints), done.stderr
    assert any("/nonexistent/python" in x for x in complaints), done.stderr


# -- writing --------------------------------------------------------------------------------------


def test_unit_paths(user_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert unit_path(user=False) == Path("/etc/systemd/system/cronkit.service")
    assert unit_path(user=True) == user_home / ".config/systemd/user/cronkit.service"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(user_home / "xdg"))
    assert unit_path(user=True) == user_home / "xdg/systemd/user/cronkit.service"
    assert enable_command(user=True) == (
        "systemctl --user daemon-reload && systemctl --user enable --now cronkit"
    )
    assert enable_command(user=False) == "systemctl daemon-reload && systemctl enable --now cronkit"


def test_install_unit_refuses_a_different_unit_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "cronkit.service"
    first = install_unit("A\n", user=False, path=target)
    assert first.changed and target.read_text() == "A\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert not install_unit("A\n", user=False, path=target).changed
    with pytest.raises(ServiceUnitExistsError) as info:
        install_unit("B\n", user=False, path=target)
    assert isinstance(info.value, FileExistsError)
    assert info.value.path == target and str(target) in str(info.value)
    assert target.read_text() == "A\n"
    assert install_unit("B\n", user=False, path=target, force=True).changed
    assert target.read_text() == "B\n"


# -- the verb -------------------------------------------------------------------------------------


def test_print_writes_nothing(home: Path, user_home: Path) -> None:
    r = cli("install-service", "--user", "--print")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == render_unit(user=True)
    assert r.stderr == ""
    assert not (user_home / ".config").exists()
    r = cli("install-service", "--print")
    assert r.exit_code == 0 and r.stdout == render_unit(user=False)


def test_user_install_writes_the_unit_and_says_what_next(home: Path, user_home: Path) -> None:
    target = user_home / ".config/systemd/user/cronkit.service"
    r = cli("install-service", "--user")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines() == [
        f"wrote {target}",
        "next: systemctl --user daemon-reload && systemctl --user enable --now cronkit",
    ]
    assert target.read_text() == render_unit(user=True)
    r = cli("install-service", "--user")
    assert r.exit_code == 0
    assert r.stdout.splitlines()[0] == f"unchanged: {target}"


def test_user_install_refuses_a_different_unit(home: Path, user_home: Path) -> None:
    target = user_home / ".config/systemd/user/cronkit.service"
    target.parent.mkdir(parents=True)
    target.write_text("[Service]\nExecStart=/bin/true\n")
    r = cli("install-service", "--user", "--grace", "10")
    assert r.exit_code == 2
    (line,) = stderr_lines(r)
    assert line == (
        f"cronkit: error: a different unit already exists at '{target}'; compare it "
        "with what --print shows, then rerun with --force to replace it"
    )
    assert r.stdout == ""
    assert target.read_text() == "[Service]\nExecStart=/bin/true\n"
    r = cli("install-service", "--user", "--grace", "10", "--force")
    assert r.exit_code == 0, r.stderr
    assert target.read_text() == render_unit(user=True, grace=10)
    assert "ExecStart=" in target.read_text() and "--grace 10" in target.read_text()


def test_bad_grace_is_one_line_exit_2(home: Path, user_home: Path) -> None:
    r = cli("install-service", "--user", "--grace", "-1")
    assert r.exit_code == 2
    (line,) = stderr_lines(r)
    assert line.startswith("cronkit: error: ") and "--grace" in line
    assert not (user_home / ".config").exists()
