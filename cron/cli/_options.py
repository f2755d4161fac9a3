"""Option values of ``add`` and ``edit`` parsed into job fields (bad ones: exit 2)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from cron.cli._errors import fail


def parse_repeat(value: str | None) -> tuple[bool, int | None]:
    """``--repeat``: a whole number >= 1, or ``forever``. Returns (given, times)."""
    if value is None:
        return False, None
    text = value.strip().lower()
    if text in ("forever", "always", "inf", "unlimited"):
        return True, None
    try:
        times = int(text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a whole number >= 1 or 'forever'", param_hint="'--repeat'"
        ) from None
    if times < 1:
        raise click.BadParameter(f"{value!r} must be >= 1 (or 'forever')", param_hint="'--repeat'")
    return True, times


def parse_timeout(value: str | None, *, allow_default: bool) -> tuple[bool, float | None]:
    if value is None:
        return False, None
    text = value.strip().lower()
    if allow_default and text == "default":
        return True, None
    try:
        seconds = float(text.rstrip("s"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a number of seconds" + (" (or 'default')" if allow_default else ""),
            param_hint="'--timeout'",
        ) from None
    if seconds < 0 or seconds != seconds:
        raise click.BadParameter(
            f"{value!r} must be >= 0 (0 = no timeout)", param_hint="'--timeout'"
        )
    return True, seconds


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """``--env K=V`` (repeatable) into a map; the library validates the names."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="'--env'")
        out[key] = value
    return out


def cwd_option(value: str | None) -> str | None:
    """``--cwd DIR`` made absolute (relative to where cronkit runs); None: not given."""
    if value is None or value == "":
        return value
    return str(Path(value).expanduser().absolute())


def here() -> str:
    """The directory cronkit was run from: ``add`` records it as the job's ``cwd``, as at(1)."""
    try:
        return str(Path.cwd())
    except FileNotFoundError:
        fail("the current directory no longer exists; cd elsewhere or give --cwd DIR")


def parse_retry(
    retries: str | None, backoff: str | None, *, allow_default: bool
) -> tuple[bool, dict[str, Any]]:
    """``--retries N`` / ``--retry-backoff DURATION`` as retry keys; ``default`` (edit) = None.

    Returns ``(given, keys)``; a key mapped to None is removed from the job's field.
    """
    from cron.retry import MAX_RETRIES, parse_duration

    keys: dict[str, Any] = {}
    if retries is not None:
        text = retries.strip().lower()
        if allow_default and text == "default":
            keys["max"] = None
        else:
            try:
                count = int(text)
            except ValueError:
                raise click.BadParameter(
                    f"{retries!r} is not a whole number of retries"
                    + (" (or 'default')" if allow_default else ""),
                    param_hint="'--retries'",
                ) from None
            if not 0 <= count <= MAX_RETRIES:
                raise click.BadParameter(
                    f"{retries!r} must be 0 to {MAX_RETRIES}", param_hint="'--retries'"
                )
            keys["max"] = count
    if backoff is not None:
        if allow_default and backoff.strip().lower() == "default":
            keys["backoff"] = None
        else:
            try:
                seconds = parse_duration(backoff, what="--retry-backoff")
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="'--retry-backoff'") from None
            keys["backoff"] = int(seconds) if seconds == int(seconds) else seconds
    return bool(keys), keys


def command_text(command: Sequence[str]) -> str:
    # One argument is a shell command line as written ("a && b"); several are argv words.
    return command[0] if len(command) == 1 else shlex.join(command)
