"""Removes what has outlived its time: expired files (row, then blob), idempotency records
older than a day (the window in which a client may retry), blob writes a crashed process
left neither committed nor aborted, and Uploads: pending ones past ``expires_at`` become
``expired``, and the parts of expired and cancelled ones are deleted (blobs, then rows)."""

from __future__ import annotations

import logging
import time

from sqlalchemy import delete, select

from contract.blobstore import BlobStore
from contract.layout import upload_prefix
from service.db.schema import File, IdempotencyRecord
from service.db.session import Database
from service.uploads import service as uploads

IDEMPOTENCY_TTL_S = 24 * 3600
INCOMPLETE_AFTER_S = 6 * 3600  # a blob write idle (local) or started (S3) this long ago was abandoned
SWEEP_EVERY_S = 600
log = logging.getLogger(__name__)


class Janitor:
    def __init__(
        self,
        db: Database,
        store: BlobStore,
        *,
        incomplete_after_s: float = INCOMPLETE_AFTER_S,
        sweep_every_s: float = SWEEP_EVERY_S,
    ) -> None:
        self.db, self.store = db, store
        self.incomplete_after_s, self.sweep_every_s = incomplete_after_s, sweep_every_s
        self._last_sweep = float("-inf")

    def run_once(self) -> int:
        now = int(time.time())
        if time.monotonic() - self._last_sweep >= self.sweep_every_s:
            self._last_sweep = time.monotonic()
            swept = self.store.sweep_incomplete(self.incomplete_after_s)
            if swept:
                log.info("removed %d incomplete blob writes left by a crash", swept)
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
        return len(expired) + self._uploads(now)

    def _uploads(self, now: int) -> int:
        with self.db.session() as s:
            uploads.expire_due(s, now)
            to_purge = uploads.with_parts_to_purge(s)
        for upload_id in to_purge:  # blobs first: a crash in between only repeats the deletion
            self.store.delete_prefix(upload_prefix(upload_id))
            with self.db.session() as s:
                uploads.forget_parts(s, upload_id)
        return len(to_purge)
