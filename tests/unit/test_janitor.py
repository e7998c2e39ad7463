from __future__ import annotations

import time
from pathlib import Path

from contract.blobstore import open_blobstore
from service.auth import get_or_create_project
from service.db.schema import File, IdempotencyRecord
from service.db.session import Database
from service.scheduling.janitor import Janitor


def test_expired_files_and_old_idempotency_records_go(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.migrate()
    store = open_blobstore((tmp_path / "blobs").as_uri())
    now = int(time.time())
    with db.session() as s:
        p = get_or_create_project(s, "p")
        for fid, expires in (("file-old", now - 1), ("file-new", now + 3600), ("file-forever", None)):
            with store.writer(f"files/{fid}") as w:
                w.write(b"x")
                w.commit()
            s.add(
                File(
                    id=fid,
                    project_id=p.id,
                    filename="f",
                    purpose="batch",
                    bytes=1,
                    sha256="0" * 64,
                    storage_key=f"files/{fid}",
                    created_at=now,
                    expires_at=expires,
                )
            )
        s.add(
            IdempotencyRecord(
                project_id=p.id, key="old", fingerprint="f", status_code=200, body={}, created_at=now - 90000
            )
        )
        s.add(IdempotencyRecord(project_id=p.id, key="new", fingerprint="f", status_code=200, body={}, created_at=now))
    assert Janitor(db, store).run_once() == 1
    with db.session() as s:
        assert sorted(f.id for f in s.query(File)) == ["file-forever", "file-new"]
        assert [r.key for r in s.query(IdempotencyRecord)] == ["new"]
    assert not store.exists("files/file-old") and store.exists("files/file-new")


def test_the_janitor_sweeps_what_a_crashed_upload_left(tmp_path: Path) -> None:
    """A server killed mid-upload leaves its temporary blob file behind; the janitor removes it
    once it has been idle past the threshold (here 0 s), and only then."""
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.migrate()
    store = open_blobstore((tmp_path / "blobs").as_uri())
    store.writer("files/file-crashed").write(b"half an upload")  # never committed nor aborted
    parts = lambda: list((tmp_path / "blobs").rglob("*.part"))  # noqa: E731
    assert len(parts()) == 1
    Janitor(db, store, incomplete_after_s=3600).run_once()
    assert len(parts()) == 1
    Janitor(db, store, incomplete_after_s=0).run_once()
    assert parts() == []
