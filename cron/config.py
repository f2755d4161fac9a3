"""``<home>/config.yaml``: defaults, deep merge and validation.

Missing keys take the defaults below. A YAML syntax error, a key of the wrong
type or an unknown key under ``cron`` is a :class:`ConfigError` naming the key
(or the line). ``cron.provider`` is the one exception: whatever it holds, the
resolver degrades to the built-in ticker, so it is only type-coerced here.
"""

from __future__ import annotations

import copy
import os
import time
import zoneinfo
from pathlib import Path
from typing import Any

import yaml

from cron import paths
from cron.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "cron": {
        "provider": "",
        "store": "",
        "interval": 60,
        "timezone": "",
        "catch_up": "once",
        "max_parallel_jobs": 4,
        "job_timeout": 600,
        "claim_ttl": 300,
        "stale_after": 200,
        "output_retention": 50,
        "webhook": {"host": "127.0.0.1", "port": 8787, "max_skew": 300},
        "retry": {"max": 0, "backoff": 30, "max_backoff": 3600},
        "metrics": {"per_job": False},
    }
}

# key -> (type, minimum); None minimum = any value of the type.
_NUMERIC: dict[str, tuple[type, float | None]] = {
    "interval": (float, 0.01),
    "max_parallel_jobs": (int, 1),
    "job_timeout": (float, 0),
    "claim_ttl": (float, 1),
    "stale_after": (float, 1),
    "output_retention": (int, 1),
    "webhook.port": (int, 0),
    "webhook.max_skew": (float, 1),
    "retry.max": (int, 0),
    "retry.backoff": (float, 0),
    "retry.max_backoff": (float, 0),
}
CATCH_UP_POLICIES = ("once", "skip")


def _merge(base: dict[str, Any], override: dict[str, Any], where: str) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(out.get(key), dict):
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{where}{key}", f"expected a mapping, got {value!r}")
            out[key] = _merge(out[key], value, f"{where}{key}.")
        else:
            out[key] = value
    return out


def _check_known(section: dict[str, Any], defaults: dict[str, Any], where: str) -> None:
    for key, value in section.items():
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            raise ConfigError(f"{where}{key}", f"unknown key (known keys: {known})")
        if isinstance(defaults[key], dict) and isinstance(value, dict):
            _check_known(value, defaults[key], f"{where}{key}.")


def _validate(cfg: dict[str, Any]) -> None:
    c = cfg["cron"]
    for dotted, (kind, minimum) in _NUMERIC.items():
        parent, key = c, dotted
        if "." in dotted:
            sub, key = dotted.split(".", 1)
            parent = c[sub]
        value = parent[key]
        ok_types: tuple[type, ...] = (int,) if kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_types):
            raise ConfigError(f"cron.{dotted}", f"expected a number, got {value!r}")
        if minimum is not None and float(value) < minimum:  # type: ignore[arg-type]
            raise ConfigError(f"cron.{dotted}", f"must be >= {minimum}, got {value!r}")
    if c["retry"]["max"] > 100:
        raise ConfigError("cron.retry.max", f"at most 100 retries, got {c['retry']['max']!r}")
    if c["catch_up"] not in CATCH_UP_POLICIES:
        raise ConfigError("cron.catch_up", f"expected 'once' or 'skip', got {c['catch_up']!r}")
    tz = c["timezone"]
    if not isinstance(tz, str):
        raise ConfigError("cron.timezone", f"expected an IANA zone name, got {tz!r}")
    if tz:
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError("cron.timezone", f"unknown time zone {tz!r}") from None
    if not isinstance(c["store"], str):
        raise ConfigError("cron.store", f"expected a store URL (e.g. 'sqlite'), got {c['store']!r}")
    host = c["webhook"]["host"]
    if not isinstance(host, str) or not host:
        raise ConfigError("cron.webhook.host", f"expected a host name, got {host!r}")
    per_job = c["metrics"]["per_job"]
    if not isinstance(per_job, bool):
        raise ConfigError("cron.metrics.per_job", f"expected true or false, got {per_job!r}")
    # The provider never makes config loading fail: the resolver degrades.
    if not isinstance(c["provider"], str):
        c["provider"] = "" if c["provider"] is None else str(c["provider"])


class _ConfigCache:
    """The parsed config per file, trusted on a ``stat`` alone once it is old enough.

    A claim reads the config several times; re-reading the file each time was a
    visible share of a webhook fire. A cached parse is reused without reading
    when the file's (inode, mtime, size) is unchanged *and* it was read at least
    ``SETTLED`` seconds after that mtime: any later write then has a later mtime,
    whatever the file system's timestamp granularity. Otherwise the text is read
    and compared, as before.
    """

    SETTLED = 0.05

    def __init__(self) -> None:
        self.entries: dict[str, tuple[tuple[int, int, int], float, str, dict[str, Any]]] = {}

    def lookup(self, path: Path) -> dict[str, Any] | None:
        """The cached parse if it is current; FileNotFoundError if there is no file."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise
        except OSError:
            return None
        hit = self.entries.get(str(path))
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if hit is not None and hit[0] == key and hit[1] - st.st_mtime_ns / 1e9 > self.SETTLED:
            return hit[3]
        return None

    def get_parsed(self, path: Path, text: str) -> dict[str, Any] | None:
        hit = self.entries.get(str(path))
        return hit[3] if hit is not None and hit[2] == text else None

    def store(self, path: Path, read_at: float, text: str, cfg: dict[str, Any]) -> None:
        try:
            st = os.stat(path)
        except OSError:
            return
        self.entries[str(path)] = ((st.st_ino, st.st_mtime_ns, st.st_size), read_at, text, cfg)


_cache = _ConfigCache()


def load_config() -> dict[str, Any]:
    """Return the merged, validated configuration (a fresh dict every call).

    The parsed result is cached per file content, so the hot paths (every
    claim reads ``claim_ttl``) pay a ``stat``, not a YAML parse.
    """
    return copy.deepcopy(read_config())


def read_config() -> dict[str, Any]:
    """:func:`load_config` without the copy, for hot paths that only read it.

    The returned dict is shared with every other caller: never modify it.
    Same errors and the same freshness (an edited file is seen at once).
    """
    path = paths.config_path()
    try:
        cached = _cache.lookup(path)
    except FileNotFoundError:
        return DEFAULTS  # no file: one failed stat, not a failed open as well
    if cached is not None:
        return cached
    read_at = time.time()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DEFAULTS
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror or exc}") from None
    cfg = _cache.get_parsed(path, text)
    if cfg is None:
        cfg = _parse(path, text)
    _cache.store(path, read_at, text, cfg)
    return cfg


def _parse(path: Path, text: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(line, f"YAML syntax error: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(str(path), f"expected a mapping at the top level, got {raw!r}")
    cron_section = raw.get("cron")
    if cron_section is not None and not isinstance(cron_section, dict):
        raise ConfigError("cron", f"expected a mapping, got {cron_section!r}")
    if isinstance(cron_section, dict):
        _check_known(cron_section, DEFAULTS["cron"], "cron.")
    cfg = _merge(DEFAULTS, raw, "")
    _validate(cfg)
    return cfg


def cfg_get(cfg: dict[str, Any] | None, *keys: str, default: Any = None) -> Any:
    """``cfg[k1][k2]...`` or ``default`` when any level is missing or not a mapping."""
    node: Any = cfg if cfg is not None else {}
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def stale_after(cfg: dict[str, Any]) -> float:
    """The heartbeat age past which the ticker counts as stalled.

    Never less than three sleeps plus slack, or a healthy ticker with a long
    ``interval`` would be reported stalled between two beats.
    """
    interval = float(cfg_get(cfg, "cron", "interval", default=60))
    configured = float(cfg_get(cfg, "cron", "stale_after", default=200))
    return max(configured, 3 * interval + 20)
