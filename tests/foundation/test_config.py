"""cron.config: defaults, deep merge, and one-line errors naming the key or line."""

from __future__ import annotations

from pathlib import Path

import pytest

from cron.config import DEFAULTS, cfg_get, load_config, read_config, stale_after
from cron.errors import ConfigError
from tests.conftest import write_config


def test_missing_file_gives_defaults(home: Path) -> None:
    cfg = load_config()
    assert cfg == DEFAULTS
    cfg["cron"]["interval"] = 1  # a fresh copy: callers cannot corrupt the defaults
    assert load_config()["cron"]["interval"] == 60


def test_deep_merge_keeps_sibling_defaults(home: Path) -> None:
    write_config(home, "cron:\n  interval: 5\n  webhook:\n    port: 9000\nother_app: {x: 1}\n")
    cfg = load_config()
    assert cfg["cron"]["interval"] == 5
    assert cfg["cron"]["webhook"] == {"host": "127.0.0.1", "port": 9000, "max_skew": 300}
    assert cfg["cron"]["catch_up"] == "once"
    assert cfg["other_app"] == {"x": 1}  # the host's own sections pass through


def test_edits_are_seen_immediately(home: Path) -> None:
    write_config(home, "cron:\n  interval: 5\n")
    assert load_config()["cron"]["interval"] == 5
    write_config(home, "cron:\n  interval: 7\n")  # same size, same second
    assert load_config()["cron"]["interval"] == 7


def test_yaml_syntax_error_names_the_line(home: Path) -> None:
    write_config(home, "cron:\n  interval: 5\n  provider: [oops\n")
    with pytest.raises(ConfigError) as err:
        load_config()
    msg = str(err.value)
    assert "config.yaml:" in msg and "YAML syntax error" in msg and "\n" not in msg


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("cron:\n  interval: soon\n", "cron.interval"),
        ("cron:\n  interval: 0\n", "cron.interval"),
        ("cron:\n  max_parallel_jobs: 1.5\n", "cron.max_parallel_jobs"),
        ("cron:\n  job_timeout: true\n", "cron.job_timeout"),
        ("cron:\n  catch_up: always\n", "cron.catch_up"),
        ("cron:\n  timezone: Mars/Olympus\n", "cron.timezone"),
        ("cron:\n  webhook: 8787\n", "cron.webhook"),
        ("cron:\n  webhook:\n    port: http\n", "cron.webhook.port"),
        ("cron:\n  intervall: 5\n", "cron.intervall"),
        ("cron: [1, 2]\n", "cron"),
        ("- just\n- a list\n", "config.yaml"),
    ],
)
def test_wrong_type_or_unknown_key_names_it(home: Path, text: str, key: str) -> None:
    write_config(home, text)
    with pytest.raises(ConfigError, match=r"config error in [^ ]*" + key.replace(".", r"\.")):
        load_config()


def test_provider_never_fails_loading(home: Path) -> None:
    write_config(home, "cron:\n  provider: 42\n")
    assert load_config()["cron"]["provider"] == "42"


def test_cfg_get() -> None:
    cfg = {"cron": {"webhook": {"port": 1}}}
    assert cfg_get(cfg, "cron", "webhook", "port") == 1
    assert cfg_get(cfg, "cron", "nope", default=3) == 3
    assert cfg_get(cfg, "cron", "webhook", "port", "deeper", default="d") == "d"
    assert cfg_get(None, "cron", default=0) == 0


def test_stale_after_is_floored_by_interval() -> None:
    assert stale_after({"cron": {"interval": 60, "stale_after": 200}}) == 200
    assert stale_after({"cron": {"interval": 120, "stale_after": 200}}) == 380
    assert stale_after({"cron": {"interval": 1, "stale_after": 5}}) == 23


def test_read_config_is_shared_and_fresh_load_config_is_a_private_copy(home: Path) -> None:
    write_config(home, "cron:\n  claim_ttl: 42\n")
    shared = read_config()
    assert read_config() is shared  # no copy on the hot path
    mine = load_config()
    mine["cron"]["claim_ttl"] = 1
    assert read_config()["cron"]["claim_ttl"] == 42  # a caller's copy never leaks back
    write_config(home, "cron:\n  claim_ttl: 43\n")
    assert read_config()["cron"]["claim_ttl"] == 43  # an edit is seen at once
    assert load_config()["cron"]["claim_ttl"] == 43
