"""Waiting for a condition in tests: poll until it holds, fail with what was awaited after a
generous bound. A bound on a wait, not a measure of speed: no test asserts how fast anything is."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, timeout_s: float = 120, every_s: float = 0.1) -> T:
    """The first truthy value of ``condition()``; an AssertionError naming ``what`` if none
    comes within ``timeout_s``."""
    give_up = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > give_up:
            raise AssertionError(f"gave up waiting for {what} after {timeout_s:.0f} s")
        time.sleep(every_s)
    return value
