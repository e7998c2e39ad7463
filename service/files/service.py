"""File records: create from a received upload, list, retrieve, delete, read content."""

from __future__ import annotations

import time
from collections.abc import Iterator

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from contract.blobstore import BlobStore
from service.db.schema import File, Project
from service.db.session import after_commit
from service.errors import InvalidRequest, file_not_found, shown
from service.files.upload import ReceivedUpload
from service.pagination import check_limit, paginate
from service.param_errors import invalid_choice, missing, not_an_integer, out_of_range
from service.protocol.files import UPLOAD_PURPOSES, FileObject

MIN_EXPIRY_S, MAX_EXPIRY_S = 3600, 2592000
BATCH_DEFAULT_EXPIRY_S = 30 * 24 * 3600


def to_wire(row: File) -> FileObject:
    return FileObject(
        id=row.id,
        bytes=row.bytes,
        created_at=row.created_at,
        expires_at=row.expires_at,
        filename=row.filename,
        purpose=row.purpose,
        status=row.status,
    )


def _expires_at(fields: dict[str, str], purpose: str, now: int) -> int | None:
    anchor = fields.get("expires_after[anchor]")
    seconds = fields.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return now + BATCH_DEFAULT_EXPIRY_S if purpose == "batch" else None
    if anchor is None:
        raise missing("expires_after[anchor]")
    if anchor != "created_at":
        raise invalid_choice("expires_after[anchor]", anchor, ("created_at",))
    if seconds is None:
        raise missing("expires_after[seconds]")
    if not (seconds.isascii() and seconds.isdigit()):  # '²'.isdigit() is true, and int() refuses it
        raise not_an_integer("expires_after[seconds]", seconds)
    digits = seconds.lstrip("0") or "0"
    value = int(digits) if len(digits) <= 20 else MAX_EXPIRY_S + 1  # int() refuses 4,300+ digits
    if not MIN_EXPIRY_S <= value <= MAX_EXPIRY_S:
        raise out_of_range(
            "expires_after[seconds]", value, minimum=MIN_EXPIRY_S, maximum=MAX_EXPIRY_S, got=shown(seconds, 32)
        )
    return now + value


def check_upload(upload: ReceivedUpload) -> tuple[str, int | None, int]:
    """Validate the form fields of a received upload; return (purpose, expires_at, now)."""
    purpose = upload.fields.get("purpose")
    if purpose is None:
        raise missing("purpose")
    if purpose not in UPLOAD_PURPOSES:
        raise invalid_choice("purpose", purpose, UPLOAD_PURPOSES)
    if purpose == "fine-tune" and upload.jsonl_error:
        raise InvalidRequest(
            f"Invalid file format for purpose 'fine-tune': {upload.jsonl_error} "
            "Fine-tuning files must be UTF-8 JSONL with one JSON object per line.",
            param="file",
            code="invalid_file_format",
        )
    now = int(time.time())
    return purpose, _expires_at(upload.fields, purpose, now), now


def record_upload(
    session: Session,
    project: Project,
    file_id: str,
    upload: ReceivedUpload,
    purpose: str,
    expires_at: int | None,
    now: int,
) -> File:
    row = File(
        id=file_id,
        project_id=project.id,
        filename=upload.filename or "upload",
        purpose=purpose,
        bytes=upload.bytes,
        sha256=upload.sha256,
        storage_key=upload.key,
        created_at=now,
        expires_at=expires_at,
        status="processed",
    )
    session.add(row)
    session.flush()
    return row


def record_generated(
    session: Session, project_id: str, file_id: str, *, key: str, filename: str, purpose: str, size: int, sha256: str
) -> File:
    """A server-made file (e.g. a job's result CSV)."""
    row = File(
        id=file_id,
        project_id=project_id,
        filename=filename,
        purpose=purpose,
        bytes=size,
        sha256=sha256,
        storage_key=key,
        created_at=int(time.time()),
        status="processed",
    )
    session.add(row)
    session.flush()
    return row


def _live(project_id: str) -> list[ColumnElement[bool]]:
    now = int(time.time())
    return [File.project_id == project_id, or_(File.expires_at.is_(None), File.expires_at > now)]


def get(session: Session, project: Project, file_id: str) -> File:
    row = session.scalar(select(File).where(File.id == file_id, *_live(project.id)))
    if row is None:
        raise file_not_found(file_id)
    return row


def list_files(
    session: Session, project: Project, *, purpose: str | None, limit: int | None, order: str, after: str | None
) -> tuple[list[File], bool]:
    if order not in ("asc", "desc"):
        raise invalid_choice("order", order, ("asc", "desc"))
    where = _live(project.id)
    if purpose is not None:
        where.append(File.purpose == purpose)
    return paginate(
        session, File, where, after=after, limit=check_limit(limit, 10000, 10000), descending=order == "desc"
    )


def delete(session: Session, store: BlobStore, project: Project, file_id: str) -> None:
    """Delete the record; its bytes go once that is committed (a failed commit loses nothing)."""
    row = get(session, project, file_id)
    key = row.storage_key
    session.delete(row)
    after_commit(session, lambda: store.delete(key))


def read(store: BlobStore, row: File) -> Iterator[bytes]:
    return store.read(row.storage_key)
