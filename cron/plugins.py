"""Finding trigger providers: bundled, installed (entry points) and user plugins.

Sources, in precedence order on a name collision:

1. bundled — ``cron/providers/<name>/`` (a package with ``plugin.yaml``);
2. entry points — group ``cronkit.schedulers`` of installed distributions;
3. user plugins — ``<home>/plugins/<name>/__init__.py``.

A plugin module either defines ``register(ctx)`` calling
``ctx.register_cron_scheduler(instance)``, or defines a ``CronScheduler``
subclass (instantiated with no arguments). An entry point may name a
subclass, an instance, or a zero-argument factory returning one. Anything
that does not end up a ``CronScheduler`` is rejected with a ``TypeError``
naming the plugin. The built-in ticker is core, never discovered, so no
plugin can shadow or remove the fallback.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from cron import paths
from cron.trigger import BUILTIN_ALIASES, CronScheduler

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "cronkit.schedulers"
BUNDLED_DIR = Path(__file__).parent / "providers"


@dataclass
class PluginContext:
    """What a plugin's ``register(ctx)`` receives."""

    source: str
    registered: list[Any]

    def register_cron_scheduler(self, scheduler: Any) -> None:
        self.registered.append(scheduler)


@dataclass(frozen=True)
class _Candidate:
    name: str
    source: str  # bundled | entry_point | user
    description: str
    load: Callable[[], Any]


def _coerce(obj: Any, label: str) -> CronScheduler:
    if inspect.isclass(obj):
        if not issubclass(obj, CronScheduler):
            raise TypeError(f"{label}: {obj!r} is not a CronScheduler subclass")
        obj = obj()
    elif not isinstance(obj, CronScheduler) and callable(obj):
        obj = obj()
    if not isinstance(obj, CronScheduler):
        raise TypeError(f"{label}: loaded {obj!r}, which is not a CronScheduler")
    return obj


def _from_module(module: ModuleType, label: str) -> CronScheduler:
    register = getattr(module, "register", None)
    if callable(register):
        ctx = PluginContext(source=label, registered=[])
        register(ctx)
        if not ctx.registered:
            raise TypeError(f"{label}: register(ctx) registered no cron scheduler")
        return _coerce(ctx.registered[0], label)
    for value in vars(module).values():
        if (
            inspect.isclass(value)
            and issubclass(value, CronScheduler)
            and not inspect.isabstract(value)
            and value.__module__ == module.__name__
        ):
            return _coerce(value, label)
    raise TypeError(f"{label}: defines neither register(ctx) nor a CronScheduler subclass")


def _describe(directory: Path) -> str:
    meta = directory / "plugin.yaml"
    try:
        data = yaml.safe_load(meta.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return ""
    return str(data.get("description", "")) if isinstance(data, dict) else ""


def _bundled(bundled_dir: Path | None) -> list[_Candidate]:
    root = bundled_dir or BUNDLED_DIR
    out: list[_Candidate] = []
    if not root.is_dir():
        return out
    package = "cron.providers" if bundled_dir is None else None
    for d in sorted(root.iterdir()):
        if not (d / "__init__.py").is_file() or d.name.startswith(("_", ".")):
            continue

        def load(d: Path = d) -> Any:
            if package is not None:
                return _from_module(
                    importlib.import_module(f"{package}.{d.name}"), f"bundled {d.name!r}"
                )
            return _from_module(_import_path(d, "cronkit_bundled"), f"bundled {d.name!r}")

        out.append(_Candidate(d.name, "bundled", _describe(d), load))
    return out


def _entry_points() -> list[_Candidate]:
    out: list[_Candidate] = []
    try:
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:
        log.warning("could not read %s entry points", ENTRY_POINT_GROUP, exc_info=True)
        return out
    for ep in eps:
        dist = getattr(ep, "dist", None)
        desc = f"from {dist.name}" if dist is not None else ep.value

        def load(ep: importlib.metadata.EntryPoint = ep) -> Any:
            return _coerce(ep.load(), f"entry point {ep.name!r} ({ep.value})")

        out.append(_Candidate(ep.name, "entry_point", desc, load))
    return out


def _import_path(directory: Path, prefix: str) -> ModuleType:
    mod_name = f"{prefix}.{directory.name}"
    spec = importlib.util.spec_from_file_location(
        mod_name, directory / "__init__.py", submodule_search_locations=[str(directory)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import plugin from {directory}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    return module


def _user(user_dir: Path | None) -> list[_Candidate]:
    root = user_dir or paths.plugins_dir()
    out: list[_Candidate] = []
    if not root.is_dir():
        return out
    for d in sorted(root.iterdir()):
        if not (d / "__init__.py").is_file() or d.name.startswith(("_", ".")):
            continue

        def load(d: Path = d) -> Any:
            return _from_module(_import_path(d, "cronkit_user_plugins"), f"user plugin {d.name!r}")

        out.append(_Candidate(d.name, "user", _describe(d), load))
    return out


def _candidates(bundled_dir: Path | None, user_dir: Path | None) -> dict[str, _Candidate]:
    """Name → winning candidate; earlier sources win collisions."""
    chosen: dict[str, _Candidate] = {}
    for group in (_bundled(bundled_dir), _entry_points(), _user(user_dir)):
        for cand in group:
            if cand.name.lower() in BUILTIN_ALIASES:
                log.warning(
                    "ignoring %s provider %r: that name is the core built-in",
                    cand.source,
                    cand.name,
                )
                continue
            if cand.name in chosen:
                log.info(
                    "provider %r from %s shadowed by %s",
                    cand.name,
                    cand.source,
                    chosen[cand.name].source,
                )
                continue
            chosen[cand.name] = cand
    return chosen


def known_provider_names(
    *, bundled_dir: Path | None = None, user_dir: Path | None = None
) -> list[str]:
    return sorted(_candidates(bundled_dir, user_dir))


def discover_cron_schedulers(
    *, bundled_dir: Path | None = None, user_dir: Path | None = None
) -> list[tuple[str, str, bool]]:
    """``(name, description, available)`` for every discoverable provider.

    ``available`` is the provider's own ``is_available()``; a provider that
    fails to load or raises is listed as unavailable, with the reason in its
    description. ``bundled_dir``/``user_dir`` override the search roots (tests).
    """
    out: list[tuple[str, str, bool]] = []
    for name, cand in sorted(_candidates(bundled_dir, user_dir).items()):
        desc = cand.description or cand.source
        try:
            available = bool(cand.load().is_available())
        except Exception as exc:
            available = False
            desc = f"{desc} (cannot load: {type(exc).__name__}: {exc})"
        out.append((name, desc, available))
    return out


def load_cron_scheduler(
    name: str, *, bundled_dir: Path | None = None, user_dir: Path | None = None
) -> CronScheduler | None:
    """The provider called ``name``, or None if no source has it.

    Import errors and a loaded object that is not a ``CronScheduler`` raise
    (``TypeError`` for the latter); the resolver turns them into a warning.
    """
    cand = _candidates(bundled_dir, user_dir).get(name)
    if cand is None:
        return None
    provider = cand.load()
    if not isinstance(provider, CronScheduler):
        raise TypeError(f"provider {name!r} is not a CronScheduler")
    return provider
