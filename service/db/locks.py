"""Leadership for background loops across control-plane replicas.

On PostgreSQL a transaction-scoped advisory lock (``pg_try_advisory_xact_lock``) makes one
replica at a time run a loop's critical section; the others skip that tick. SQLite is the
embedded single-process default, where the lock is always granted (SQLite's own write lock
serialises writers anyway).
"""

from __future__ import annotations

import zlib

from sqlalchemy import text
from sqlalchemy.orm import Session


def try_lock(session: Session, name: str) -> bool:
    """Take the lock ``name`` for the rest of ``session``'s transaction, if it is free."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    key = zlib.crc32(f"hone:{name}".encode())
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar())
