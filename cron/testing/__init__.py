"""Contract suites for anyone writing a cronkit backend or plugin (SPEC §10).

Each is a pytest base class whose tests run against the implementation a
subclass provides through one fixture:

- :class:`cron.testing.store.StoreContract` — a job store (``cron.stores.JobStore``):
  the compare-and-set seam, wake-time scans, ``swap_many`` with its ledger rows,
  racing threads and ``spawn`` processes, and the claim built on top;
- :class:`cron.testing.provider.ProviderContract` — a trigger provider
  (``cron.scheduler_provider.CronScheduler``).

How to use one: in your own test suite, subclass it (with a ``Test`` prefix so
pytest collects it), provide the fixture, and run pytest::

    # tests/test_my_store.py
    import pytest
    from cron.testing.store import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self, home):          # ``home``: a private CRONKIT_HOME, defined by the contract
            s = MyStore("mystore://localhost/test")
            yield s
            s.close()

    # tests/test_my_provider.py
    from cron.testing.provider import ProviderContract

    class TestMyProvider(ProviderContract):
        @pytest.fixture
        def provider(self, home):
            return MyProvider()

Every contract test then runs against your implementation. The bases have no
``Test`` prefix, so importing one does not make pytest run it on its own. They
need ``pytest`` (cronkit's ``test`` extra), which cronkit itself does not.
"""
