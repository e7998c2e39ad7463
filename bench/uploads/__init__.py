"""Benchmarks of the Uploads API (``python -m bench.uploads.run``)."""
