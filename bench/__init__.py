"""Benchmarks for vopr-aws: each `bench_*.py` module measures one thing and reports ratios from one run.

`python -m bench` (or `make bench`) runs them all; `python -m bench.bench_NAME` runs one.
"""
