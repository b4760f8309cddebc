"""Benchmarks and results: suites (``suite``), ``metrics``, the run index (``runindex``), reports and plots,
effective configs and code identity (``effective``), cell ``claims`` and ``progress``."""
