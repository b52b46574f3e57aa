"""Benchmarks: ``make bench``. Results go to ``benchmarks/results/<date>/``."""
