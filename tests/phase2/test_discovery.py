"""Phase 2: provider discovery over bundled dirs, entry points and user plugins.

Entry points are tested zarr-style: a fake ``*.dist-info/entry_points.txt`` on
``sys.path``, nothing pip-installed.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cron.plugins import discover_cron_schedulers, load_cron_scheduler
from cron.scheduler_provider import CronScheduler


def provider_source(name: str, tag: str, available: bool = True) -> str:
    return textwrap.dedent(
        f"""
        from cron.scheduler_provider import CronScheduler

        class P(CronScheduler):
            tag = {tag!r}

            @property
            def name(self):
                return {name!r}

            def start(self, stop_event, *, adapters=None, loop=None, interval=60):
                return None

            def is_available(self):
                return {available!r}
        """
    )


def make_pkg(root: Path, name: str, source: str, description: str | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "__init__.py").write_text(source, encoding="utf-8")
    if description is not None:
        (d / "plugin.yaml").write_text(f"name: {name}\ndescription: {description}\n")
    return d


@pytest.fixture
def roots(tmp_path: Path, home: Path) -> tuple[Path, Path]:
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    user = home / "plugins"
    user.mkdir(parents=True)
    return bundled, user


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Put a fake installed distribution with cronkit.schedulers entry points on sys.path."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def add(module: str, entries: dict[str, str], source: str) -> None:
        (site / f"{module}.py").write_text(source, encoding="utf-8")
        info = site / f"{module.replace('_', '-')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
        lines = "\n".join(f"{k} = {v}" for k, v in entries.items())
        (info / "entry_points.txt").write_text(f"[cronkit.schedulers]\n{lines}\n")

    return add


def test_bundled_provider_found_with_description(roots: tuple[Path, Path]) -> None:
    bundled, user = roots
    make_pkg(bundled, "alpha", provider_source("alpha", "bundled"), "Alpha does things")
    found = discover_cron_schedulers(bundled_dir=bundled, user_dir=user)
    assert ("alpha", "Alpha does things", True) in found
    p = load_cron_scheduler("alpha", bundled_dir=bundled, user_dir=user)
    assert isinstance(p, CronScheduler) and p.name == "alpha"


def test_entry_point_provider_found(roots: tuple[Path, Path], fake_dist) -> None:
    bundled, user = roots
    fake_dist("cronkit_fake_ep", {"epprov": "cronkit_fake_ep:P"}, provider_source("epprov", "ep"))
    names = [n for n, _, _ in discover_cron_schedulers(bundled_dir=bundled, user_dir=user)]
    assert "epprov" in names
    p = load_cron_scheduler("epprov", bundled_dir=bundled, user_dir=user)
    assert p is not None and p.name == "epprov" and type(p).tag == "ep"


def test_user_plugin_subclass_and_register_forms(roots: tuple[Path, Path]) -> None:
    bundled, user = roots
    make_pkg(user, "subcls", provider_source("subcls", "user"))
    make_pkg(
        user,
        "viareg",
        provider_source("viareg", "user")
        + "\n\ndef register(ctx):\n    ctx.register_cron_scheduler(P())\n",
    )
    found = {n: a for n, _, a in discover_cron_schedulers(bundled_dir=bundled, user_dir=user)}
    assert found == {"subcls": True, "viareg": True}
    for name in found:
        p = load_cron_scheduler(name, bundled_dir=bundled, user_dir=user)
        assert p is not None and p.name == name


def test_unavailable_provider_is_listed_as_unavailable(roots: tuple[Path, Path]) -> None:
    bundled, user = roots
    make_pkg(user, "offline", provider_source("offline", "user", available=False))
    assert discover_cron_schedulers(bundled_dir=bundled, user_dir=user)[0][2] is False


def test_precedence_bundled_over_entry_point_over_user(roots: tuple[Path, Path], fake_dist) -> None:
    bundled, user = roots
    make_pkg(bundled, "both", provider_source("both", "bundled"))
    make_pkg(user, "both", provider_source("both", "user"))
    make_pkg(user, "epuser", provider_source("epuser", "user"))
    fake_dist(
        "cronkit_fake_prec",
        {"both": "cronkit_fake_prec:P", "epuser": "cronkit_fake_prec:P"},
        provider_source("both", "ep"),
    )

    def tag(name: str) -> str:
        p = load_cron_scheduler(name, bundled_dir=bundled, user_dir=user)
        assert p is not None
        return type(p).tag

    assert tag("both") == "bundled"  # bundled beats entry point and user
    assert tag("epuser") == "ep"  # entry point beats user
    names = [n for n, _, _ in discover_cron_schedulers(bundled_dir=bundled, user_dir=user)]
    assert names.count("both") == 1 and names.count("epuser") == 1


@pytest.mark.parametrize("alias", ["builtin", "inprocess"])
def test_builtin_is_never_discovered(roots: tuple[Path, Path], alias: str) -> None:
    bundled, user = roots
    make_pkg(user, alias, provider_source(alias, "impostor"))
    assert discover_cron_schedulers(bundled_dir=bundled, user_dir=user) == []
    assert load_cron_scheduler(alias, bundled_dir=bundled, user_dir=user) is None


def test_real_bundled_dir_never_lists_the_builtin(home: Path) -> None:
    names = {n for n, _, _ in discover_cron_schedulers()}
    assert not names & {"builtin", "in-process", "inprocess", ""}


def test_non_cron_scheduler_is_rejected_naming_the_plugin(
    roots: tuple[Path, Path], fake_dist
) -> None:
    bundled, user = roots
    make_pkg(
        user,
        "notone",
        "class NotAProvider:\n    pass\n\ndef register(ctx):\n"
        "    ctx.register_cron_scheduler(NotAProvider())\n",
    )
    fake_dist("cronkit_fake_bad", {"badep": "cronkit_fake_bad:thing"}, "thing = 42\n")
    with pytest.raises(TypeError, match="notone.*not a CronScheduler"):
        load_cron_scheduler("notone", bundled_dir=bundled, user_dir=user)
    with pytest.raises(TypeError, match="badep.*not a CronScheduler"):
        load_cron_scheduler("badep", bundled_dir=bundled, user_dir=user)
    listed = {n: (d, a) for n, d, a in discover_cron_schedulers(bundled_dir=bundled, user_dir=user)}
    assert listed["notone"][1] is False and "not a CronScheduler" in listed["notone"][0]


def test_unknown_name_is_none(roots: tuple[Path, Path]) -> None:
    bundled, user = roots
    assert load_cron_scheduler("nope", bundled_dir=bundled, user_dir=user) is None
