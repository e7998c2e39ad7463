"""Rendezvous (highest-random-weight) hashing: every request for one model prefers the same
upstream, so its adapter stays warm there; when that upstream is down the next in the
model's own order takes over, and adding or removing an upstream moves only the models that
hashed to it."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def preference(upstreams: Sequence[str], key: str) -> list[str]:
    def weight(upstream: str) -> bytes:
        return hashlib.sha256(f"{key}\x00{upstream}".encode()).digest()

    return sorted(upstreams, key=weight, reverse=True)
