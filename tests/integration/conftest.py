"""Fixtures of the integration tests."""

from tests.harness.process import hone_process

__all__ = ["hone_process"]  # a real `hone serve` process, per test
