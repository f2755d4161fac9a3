"""Fixtures for the crontab integration tests: a crontab that is safe to rewrite.

As root (CI), the reconcile and contract tests work on the crontab of a
throwaway system user created for the session (``useradd``, removed at the
end), so root's own crontab is never touched by them. Its lines may even be
run by the daemon meanwhile: as that unprivileged user they cannot read the
root-owned test homes, so they do nothing. Without root, the invoking user's
own crontab is used and restored byte for byte after every test.

The end-to-end test needs jobs that really run with access to the test home,
so it uses root's crontab and restores it byte for byte (see that module).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cron.providers.crontab import CrontabScheduler

MISSING = (
    "no crontab binary on PATH: the integration env needs Debian's cron package "
    "(apt-get install -y --no-install-recommends cron; tests/integration/ensure_cron.sh does it)"
)


@dataclass
class CrontabTarget:
    """One user's crontab, read and written with the real binary."""

    binary: str
    user: str | None

    def _argv(self, *args: str) -> list[str]:
        return [self.binary, *(["-u", self.user] if self.user else []), *args]

    def read(self) -> str | None:
        proc = subprocess.run(
            self._argv("-l"),
            capture_output=True,
            text=True,
            timeout=30,
            env=dict(os.environ, LC_ALL="C"),
        )
        if proc.returncode == 0:
            return proc.stdout
        assert "no crontab for" in proc.stderr, proc.stderr
        return None

    def write(self, text: str | None) -> None:
        if text is None:
            subprocess.run(self._argv("-r"), capture_output=True, timeout=30)
            return
        subprocess.run(self._argv("-"), input=text, text=True, check=True, timeout=30)

    def provider(self, crontab_cmd: tuple[str, ...] | None = None, **kw: Any) -> CrontabScheduler:
        return CrontabScheduler(crontab_cmd or (self.binary,), self.user, **kw)


@pytest.fixture(scope="session")
def crontab_binary() -> str:
    path = shutil.which("crontab")
    if path is None:
        pytest.fail(MISSING)
    return path


@pytest.fixture(scope="session")
def crontab_user(crontab_binary: str) -> Iterator[str | None]:
    if os.geteuid() != 0:
        yield None
        return
    name = f"ckt-{uuid.uuid4().hex[:8]}"
    shell = "/usr/sbin/nologin" if os.path.exists("/usr/sbin/nologin") else "/bin/false"
    useradd = shutil.which("useradd")
    if useradd is None:
        pytest.fail("running as root but there is no useradd to create a throwaway crontab user")
    subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", shell, name],
        check=True,
        capture_output=True,
        timeout=30,
    )
    try:
        yield name
    finally:
        subprocess.run([crontab_binary, "-u", name, "-r"], capture_output=True, timeout=30)
        subprocess.run(["userdel", name], capture_output=True, timeout=30)


@pytest.fixture
def target(crontab_binary: str, crontab_user: str | None) -> Iterator[CrontabTarget]:
    """A crontab to rewrite; restored byte for byte afterwards (empty to start, as root)."""
    t = CrontabTarget(crontab_binary, crontab_user)
    saved = t.read()
    if crontab_user is not None:
        t.write(None)
    try:
        yield t
    finally:
        t.write(saved)
        assert t.read() == saved


@pytest.fixture
def counting_crontab(tmp_path: Path, crontab_binary: str) -> tuple[tuple[str, ...], Path]:
    """A wrapper around the real binary that logs each invocation's arguments."""
    calls = tmp_path / "crontab-calls.log"
    wrapper = tmp_path / "crontab-wrapper"
    wrapper.write_text(
        f'#!/bin/sh\necho "$*" >> "{calls}"\nexec "{crontab_binary}" "$@"\n', encoding="utf-8"
    )
    wrapper.chmod(0o755)
    return (str(wrapper),), calls
