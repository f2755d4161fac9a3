"""``cronkit install-service``: a systemd unit running ``cronkit gateway`` for a home (SPEC §14).

:func:`render_unit` is pure (the text for a home, an interpreter and a grace);
:func:`install_unit` writes it, refusing to replace a different unit unless
told to. The CLI prints where it went and the ``systemctl`` step that starts it.
"""

from __future__ import annotations

import math
import os
import pwd
import sys
from dataclasses import dataclass
from pathlib import Path

from cron import paths
from cron.errors import ServiceUnitExistsError

__all__ = [
    "SYSTEM_UNIT_DIR",
    "UNIT_NAME",
    "InstallResult",
    "enable_command",
    "install_unit",
    "render_unit",
    "unit_path",
]

UNIT_NAME = "cronkit.service"
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
UNIT_MODE = 0o644  # systemd's own convention; a unit holds no secret

# After the grace the gateway ends its jobs' process groups (SIGTERM, then
# SIGKILL 5 s later); systemd must not cut that short.
_STOP_MARGIN = 20


@dataclass(frozen=True)
class InstallResult:
    path: Path
    changed: bool  # False: an identical unit was already there


def unit_path(*, user: bool) -> Path:
    """Where the unit goes: the user's systemd directory, or the system one."""
    if not user:
        return SYSTEM_UNIT_DIR / UNIT_NAME
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user" / UNIT_NAME


def enable_command(*, user: bool) -> str:
    ctl = "systemctl --user" if user else "systemctl"
    return f"{ctl} daemon-reload && {ctl} enable --now {UNIT_NAME.removesuffix('.service')}"


def _quote(word: str) -> str:
    """One ExecStart=/Environment= word, as systemd reads it back.

    ``%`` starts a specifier and ``$`` a variable in systemd's syntax, so both
    are doubled; anything with a space, a quote or a backslash is double-quoted.
    """
    word = word.replace("%", "%%").replace("$", "$$")
    if word and not any(c in word for c in " \t\"'\\"):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _service_user(home: Path) -> str | None:
    """``User=`` for a system unit: whoever owns the home (else the caller); None for root."""
    try:
        uid = home.stat().st_uid if home.exists() else os.getuid()
        name = pwd.getpwuid(uid).pw_name
    except (OSError, KeyError):
        return None
    return None if name == "root" else name


def render_unit(
    *,
    user: bool,
    home: Path | None = None,
    python: str | None = None,
    grace: float = 30.0,
    tz: str | None = None,
) -> str:
    """The unit text for ``home`` (default: this home) run by ``python`` (default: this one).

    ``tz`` (default: ``$TZ``) is passed on when set, so the gateway reads
    wall-clock times in the zone the CLI shows them in (a service has no
    ``$TZ`` of its own); ``cron.timezone`` still wins over it.
    """
    home_dir = Path(os.path.abspath(home if home is not None else paths.home()))
    interpreter = os.path.abspath(python if python is not None else sys.executable)
    zone = tz if tz is not None else os.environ.get("TZ", "")
    grace_text = f"{grace:g}"
    stop_timeout = math.ceil(grace) + _STOP_MARGIN
    exec_start = " ".join(
        _quote(w) for w in (interpreter, "-m", "cron", "gateway", "--grace", grace_text)
    )
    unit = [
        f"# cronkit gateway for CRONKIT_HOME={home_dir} (written by 'cronkit install-service')",
        "[Unit]",
        f"Description=cronkit gateway ({home_dir})",
    ]
    if not user:
        # A database store (cron.store) may live on another host.
        unit += ["Wants=network-online.target", "After=network-online.target"]
    unit += [
        "",
        "[Service]",
        "Type=simple",
        f"Environment={_quote(f'CRONKIT_HOME={home_dir}')}",
    ]
    if zone:
        unit.append(f"Environment={_quote(f'TZ={zone}')}")
    if not user:
        service_user = _service_user(home_dir)
        if service_user is not None:
            unit.append(f"User={service_user}")
    unit += [
        f"ExecStart={exec_start}",
        "Restart=on-failure",
        "RestartSec=5",
        # Exit 2 is bad input (a broken config, another gateway on this home):
        # restarting cannot fix it.
        "RestartPreventExitStatus=2",
        "# mixed: 'systemctl stop' sends SIGTERM to the gateway alone, not to every job",
        "# it runs (control-group would). The gateway stops taking fires, waits up to",
        f"# --grace ({grace_text}s) for running jobs, then ends their process groups itself",
        "# (SIGTERM, SIGKILL 5 s later) and records them interrupted; whatever is left",
        "# in the unit when it exits, or at TimeoutStopSec, gets SIGKILL from systemd.",
        "KillMode=mixed",
        f"TimeoutStopSec={stop_timeout}",
        "",
        "[Install]",
        f"WantedBy={'default.target' if user else 'multi-user.target'}",
        "",
    ]
    return "\n".join(unit)


def install_unit(
    text: str, *, user: bool, force: bool = False, path: Path | None = None
) -> InstallResult:
    """Write ``text`` to the unit path (or ``path``), atomically, mode 0644.

    An identical unit already there is left alone (``changed=False``); a
    different one raises :class:`~cron.errors.ServiceUnitExistsError` unless
    ``force``, and nothing is written.
    """
    target = path if path is not None else unit_path(user=user)
    try:
        current: str | None = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    if current == text:
        return InstallResult(target, changed=False)
    if current is not None and not force:
        raise ServiceUnitExistsError(target)
    # The usual modes for ~/.config/systemd/user (not cronkit's own 0700).
    target.parent.mkdir(parents=True, exist_ok=True)
    paths.atomic_write_text(target, text)
    os.chmod(target, UNIT_MODE)
    return InstallResult(target, changed=True)
