"""Benchmark suite of worksync-p2p: ``python -m benchmarks [--quick] [--only NAME]``.

Speed is measured here, not tested: the suite prints medians and p99s next to
the goals of the issue, and the smoke test only checks that it runs.
"""
