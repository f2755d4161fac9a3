"""How the CLI shows things: tables, ``key: value`` lines, JSON, the symbols a terminal can show.

The text of instants, durations and jobs lives one layer down in :mod:`cron.fmt`
(``explain`` uses it too) and is re-exported here, so every CLI module imports its
output helpers from one place; ``--json`` goes through :func:`echo_json`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from cron.fmt import (
    action_text,
    age,
    configured_zone,
    fmt_duration,
    fmt_next_run,
    fmt_offset,
    fmt_relative,
    fmt_time,
    job_label,
    one_line,
    repeat_text,
    schedule_text,
    to_dt,
    zone_name,
)


def symbols() -> tuple[str, str]:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗—".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "OK", "X"
    return "✓", "✗"


def em_dash() -> str:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "—".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "-"
    return "—"


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [cell.ljust(widths[i]) for i, cell in enumerate(cells)]
        return "  ".join(parts).rstrip()

    click.echo(line(headers))
    for row in rows:
        click.echo(line(row))


def echo_kv(pairs: Sequence[tuple[str, str]], indent: str = "") -> None:
    width = max((len(k) for k, _ in pairs), default=0) + 1
    for key, value in pairs:
        click.echo(f"{indent}{(key + ':').ljust(width)} {value}")


__all__ = [
    "action_text",
    "age",
    "configured_zone",
    "echo_json",
    "echo_kv",
    "echo_table",
    "em_dash",
    "fmt_duration",
    "fmt_next_run",
    "fmt_offset",
    "fmt_relative",
    "fmt_time",
    "job_label",
    "one_line",
    "repeat_text",
    "schedule_text",
    "symbols",
    "to_dt",
    "zone_name",
]
