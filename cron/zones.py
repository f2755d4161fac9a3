"""Instants and zones: ISO text, wall time to instant across DST, the configured zone.

Every instant this module returns is timezone-aware UTC; every instant written
as text goes through :func:`to_iso` (:func:`cron.model.format_ts`). A naive wall
time inside a spring-forward gap means the first instant after the gap; one inside a
fall-back fold, the first pass (:func:`_wall_to_instants` gives both passes to the cron
walk in :mod:`cron.cronexpr`). The zone to read wall times in comes from
:func:`resolve_zone`: an explicit name, ``cron.timezone``, ``$TZ``, the system, UTC.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from cron.errors import ScheduleError, TimeZoneError
from cron.model import format_ts

# --------------------------------------------------------------------------- time helpers


def _aware_utc(dt: datetime) -> datetime:
    """``dt`` as an aware UTC datetime; naive input is taken to be UTC already."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


to_iso = format_ts
"""``cron.model.format_ts`` under the name the schedule layer has always exported."""


def _wall_to_instants(wall: datetime, zone: tzinfo) -> tuple[datetime, datetime | None]:
    """Map a naive wall time in ``zone`` to its first instant and, in a fold, its second.

    A wall time inside a spring-forward gap maps to the transition instant (the
    first instant after the gap), so every gap time collapses onto one instant.
    Relies on PEP 495 semantics: ``fold=0`` uses the offset in force before a
    transition, ``fold=1`` the one after.
    """
    off0 = wall.replace(tzinfo=zone).utcoffset() or timedelta(0)
    off1 = wall.replace(tzinfo=zone, fold=1).utcoffset() or timedelta(0)
    first = (wall - off0).replace(tzinfo=UTC)
    if off0 == off1:
        return first, None
    second = (wall - off1).replace(tzinfo=UTC)
    if first < second:
        # Fold: the wall time really happens twice, fold=0 being the earlier pass.
        return first, second
    # Gap: `second` (new offset) lies before the transition, `first` after it.
    return _transition_between(zone, second, first), None


def _transition_between(zone: tzinfo, lo: datetime, hi: datetime) -> datetime:
    """The instant in ``(lo, hi]`` at which ``zone``'s offset changes.

    zoneinfo does not expose its transition table, so bisect on whole seconds
    (tzdata transitions are whole seconds); a gap is at most a few hours, so
    this is ~15 offset look-ups, twice a year per zone.
    """
    lo_s = math.floor(lo.timestamp())
    hi_s = math.ceil(hi.timestamp())
    before = datetime.fromtimestamp(lo_s, zone).utcoffset()
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == before:
            lo_s = mid
        else:
            hi_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


def _naive_in_zone_to_utc(naive: datetime, zone: tzinfo) -> datetime:
    """A naive wall time read in ``zone``: gap -> after the gap, fold -> first pass."""
    return _wall_to_instants(naive.replace(tzinfo=None), zone)[0]


def parse_instant(value: str | datetime, *, tz: str | tzinfo | None = None) -> datetime:
    """ISO-8601 text or a datetime -> aware UTC datetime: what a *user* typed.

    Unlike :func:`cron.model.parse_ts` (stored text, naive = UTC), naive values are
    wall times in ``tz`` (else the configured zone, see :func:`resolve_zone`); a wall
    time in a DST gap means the first instant after the gap, one in a fold means the
    first pass. Raises :class:`ScheduleError`
    for anything that is not a timestamp.
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ScheduleError(value, "not an ISO-8601 timestamp") from None
    else:
        raise ScheduleError(value, "expected an ISO-8601 string or a datetime")
    if dt.tzinfo is None or dt.utcoffset() is None:
        return _naive_in_zone_to_utc(dt, resolve_zone(tz))
    return dt.astimezone(UTC)


# --------------------------------------------------------------------------- zones


def _zone_from_name(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except Exception:
        # ZoneInfoNotFoundError, ValueError (paths, NUL bytes), IsADirectoryError,
        # ... - every flavour of "not a zone" is the same answer here.
        return None


def _system_zone() -> tzinfo | None:
    try:
        target = os.path.realpath("/etc/localtime")
        marker = "/zoneinfo/"
        if marker in target:
            zone = _zone_from_name(target.split(marker, 1)[1])
            if zone is not None:
                return zone
    except OSError:
        pass
    try:
        with open("/etc/timezone", encoding="utf-8") as fh:
            return _zone_from_name(fh.read().strip())
    except OSError:
        return None


def _env_zone() -> tzinfo | None:
    raw = os.environ.get("TZ", "").strip()
    if raw.startswith(":"):
        raw = raw[1:]
    if "/zoneinfo/" in raw:
        raw = raw.split("/zoneinfo/", 1)[1]
    return _zone_from_name(raw) if raw else None


def _fallback_zone(configured: str) -> tzinfo:
    if configured:
        zone = _zone_from_name(configured)
        if zone is not None:
            return zone
    return _env_zone() or _system_zone() or _zone_from_name("UTC") or UTC


_configured_cache: tuple[tuple[str | None, ...], str, tuple[int, ...], tzinfo] | None = None


def _configured_zone() -> tzinfo:
    """The zone from config.yaml / $TZ / the system, cached on the config file's stat.

    ``compute_next_run`` runs once per job per tick; re-reading and re-parsing
    YAML 100k times would dominate the tick, while a ``stat`` is cheap and still
    picks up an edited config at once.
    """
    global _configured_cache
    from cron import paths

    env = (os.environ.get("CRONKIT_HOME"), os.environ.get("HOME"), os.environ.get("TZ"))
    cached = _configured_cache
    # Building the path goes through pathlib (slow); it only changes with the env.
    path = cached[1] if cached is not None and cached[0] == env else str(paths.config_path())
    try:
        st = os.stat(path)
        stamp: tuple[int, ...] = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        stamp = ()
    if cached is not None and cached[0] == env and cached[2] == stamp:
        return cached[3]
    zone = _fallback_zone(_configured_name(None))
    _configured_cache = (env, path, stamp, zone)  # one tuple store: atomic, no lock
    return zone


def _configured_name(cfg: dict[str, Any] | None) -> str:
    from cron.config import cfg_get, load_config

    if cfg is None:
        try:
            cfg = load_config()
        except Exception:
            # A broken config.yaml is reported by whoever loads it for real; a
            # next-run computation must still answer, so fall through to $TZ.
            return ""
    name = cfg_get(cfg, "cron", "timezone", default="")
    return name.strip() if isinstance(name, str) else ""


def resolve_zone(name: str | tzinfo | None = None, cfg: dict[str, Any] | None = None) -> tzinfo:
    """The zone to read wall-clock times in.

    Order: ``name`` (an IANA name or a tzinfo, returned as is); config
    ``cron.timezone`` (``cfg``, else :func:`cron.config.load_config`, whose
    failure is ignored here); ``$TZ`` if it names an IANA zone; the system zone
    (``/etc/localtime`` link target, ``/etc/timezone``); UTC.

    Raises :class:`~cron.errors.TimeZoneError` (a ``ScheduleError``) only for
    an explicit ``name`` that is not a known zone.
    """
    if isinstance(name, tzinfo):
        return name
    if isinstance(name, str) and name.strip():
        zone = _zone_from_name(name.strip())
        if zone is None:
            raise TimeZoneError(name, "unknown time zone")
        return zone
    if name is not None and not isinstance(name, str):
        raise TimeZoneError(name, "time zone must be an IANA name or a tzinfo")
    if cfg is not None:
        return _fallback_zone(_configured_name(cfg))
    return _configured_zone()


def _zone_key(tz: str | tzinfo | None) -> str | None:
    """The IANA name to record on a schedule for ``tz``, if it has one."""
    if isinstance(tz, str) and tz.strip():
        resolve_zone(tz)  # validates
        return tz.strip()
    if isinstance(tz, ZoneInfo) and tz.key:
        return str(tz.key)
    return None


__all__ = ["parse_instant", "resolve_zone", "to_iso"]
