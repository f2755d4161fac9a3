"""One private CRONKIT_HOME per Hypothesis example.

pytest fixtures are per test, not per example, so property tests that need a
fresh store for every generated case use this context manager instead. On
``CRONKIT_TEST_STORE=postgres`` the example gets a fresh database too
(``tests.support.suite.fresh_store_env``), as the ``home`` fixture does.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def fresh_home(
    config_yaml: str = "cron:\n  timezone: UTC\n", *, prefix: str = "cronkit-p-"
) -> Iterator[Path]:
    """Point CRONKIT_HOME (and TZ=UTC) at a new temp home holding ``config_yaml``; restore after."""
    from cron.store import set_store
    from tests.support.suite import fresh_store_env

    saved = {k: os.environ.get(k) for k in ("CRONKIT_HOME", "TZ")}
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp, fresh_store_env():
        home = Path(tmp) / "home"
        home.mkdir(mode=0o700)
        (home / "config.yaml").write_text(config_yaml, encoding="utf-8")
        os.environ["CRONKIT_HOME"] = str(home)
        os.environ["TZ"] = "UTC"
        set_store(None)
        try:
            yield home
        finally:
            set_store(None)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
