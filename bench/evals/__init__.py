"""Benchmarks of the Evals API (``python -m bench.evals.run``)."""
