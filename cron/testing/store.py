"""``StoreContract``: the tests every :class:`cron.stores.JobStore` must pass (SPEC §10).

Subclass it and provide a ``store`` fixture (zarr's ``StoreTests`` idiom)::

    import pytest
    from cron.testing.store import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self, home):
            s = MyStore("mystore://...")
            yield s
            s.close()

``home`` is defined here: it points ``CRONKIT_HOME`` (and ``TZ=UTC``) at a
fresh temporary directory, so a store that keeps anything under the home (the
JSON store's ``jobs.json``, the ledger) starts empty in every test. The
process tests open the store again, in child processes, by
:meth:`StoreContract.store_url`; override it when ``store.url`` alone does not
name the same store in a fresh process.

Each test pins one rule of the seam (:class:`cron.stores.JobStore`'s
docstrings) or of the claim built on it (:mod:`cron.jobs`, SPEC §3), with real
threads and real ``spawn`` processes. Nothing is mocked.

The tests are grouped by topic in mixins — :mod:`cron.testing.store_items`,
:mod:`~cron.testing.store_scans`, :mod:`~cron.testing.store_batches`,
:mod:`~cron.testing.store_races` — but ``StoreContract`` is the one class to
subclass: it supplies the fixtures every group uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cron.stores import JobStore
from cron.testing.store_batches import BatchContract
from cron.testing.store_items import ItemsContract
from cron.testing.store_races import RaceContract
from cron.testing.store_scans import ScanContract
from cron.testing.store_support import T0, make_job

__all__ = ["T0", "StoreContract", "make_job"]


class StoreContract(ItemsContract, ScanContract, BatchContract, RaceContract):
    """Tests any job store must pass. Provide a ``store`` fixture (it may use ``home``)."""

    # -- fixtures and hooks -------------------------------------------------------------

    @pytest.fixture
    def home(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """A private, empty ``CRONKIT_HOME`` (inherited by the process tests' children)."""
        h = tmp_path / "cronkit-home"
        h.mkdir(mode=0o700)
        monkeypatch.setenv("CRONKIT_HOME", str(h))
        monkeypatch.setenv("TZ", "UTC")
        return h

    @pytest.fixture
    def store(self) -> JobStore:
        raise NotImplementedError("a StoreContract subclass must define the store fixture")

    @pytest.fixture
    def installed(self, store: JobStore) -> Iterator[JobStore]:
        """``store`` as the process-wide store, for the ledger and the ``cron.jobs`` API."""
        from cron.store import set_store

        set_store(store)
        try:
            yield store
        finally:
            set_store(None)

    def store_url(self, store: JobStore) -> str:
        """The URL a fresh process passes to ``cron.stores.open_store`` to reach ``store``."""
        return store.url
