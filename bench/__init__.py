"""cronkit benchmarks (not part of the test gate): ``python bench/run.py [--quick]``."""
