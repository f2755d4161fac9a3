"""Helpers shared by the test suites (fakes, seeding, store snapshots)."""
