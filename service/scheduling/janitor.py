"""Removes what has outlived its time: expired files (row, then blob) and idempotency records
older than a day (the window in which a client may retry)."""

from __future__ import annotations

import time

from sqlalchemy import delete, select

from contract.blobstore import BlobStore
from service.db.schema import File, IdempotencyRecord
from service.db.session import Database

IDEMPOTENCY_TTL_S = 24 * 3600


class Janitor:
    def __init__(self, db: Database, store: BlobStore) -> None:
        self.db, self.store = db, store

    def run_once(self) -> int:
        now = int(time.time())
        with self.db.session() as s:
            expired = list(
                s.execute(
                    select(File.id, File.storage_key)
                    .where(File.expires_at.is_not(None), File.expires_at <= now)
                    .limit(500)
                )
            )
            if expired:
                s.execute(delete(File).where(File.id.in_([fid for fid, _ in expired])))
            s.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now - IDEMPOTENCY_TTL_S))
        for _, key in expired:  # after the commit: a row never points at a missing blob
            self.store.delete(key)
        return len(expired)
