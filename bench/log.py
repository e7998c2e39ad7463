"""Progress lines for the benchmarks: on stderr, so stdout keeps only the results table."""

from __future__ import annotations

import sys


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
