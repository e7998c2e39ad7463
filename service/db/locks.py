"""Leadership for background loops across control-plane replicas, and the migration lock.

On PostgreSQL a transaction-scoped advisory lock (``pg_try_advisory_xact_lock``) makes one
replica at a time run a loop's critical section; the others skip that tick. ``wait_lock``
(``pg_advisory_xact_lock``) waits instead: replicas starting together on an empty database
migrate one after the other, and the later ones find it at head. SQLite is the embedded
single-process default, where the lock is always granted (SQLite's own write lock serialises
writers anyway).
"""

from __future__ import annotations

import zlib

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

MIGRATIONS = "migrations"


def try_lock(session: Session, name: str) -> bool:
    """Take the lock ``name`` for the rest of ``session``'s transaction, if it is free."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _key(name)}).scalar())


def wait_lock(conn: Connection, name: str) -> None:
    """Take the lock ``name`` for the rest of ``conn``'s transaction, waiting while another holds it."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _key(name)})


def _key(name: str) -> int:
    return zlib.crc32(f"hone:{name}".encode())
