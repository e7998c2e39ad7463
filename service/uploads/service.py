"""Upload records and their states: create, take a part, claim and finish a completion, cancel,
and what the janitor expires and purges.

An Upload is ``pending`` until it is completed, cancelled, or reaches ``expires_at`` (shown as
``expired`` at once; the janitor then records it). While one request completes it,
``completing_at`` is set: parts, cancel and another completion are refused until it finishes or
gives the claim back (a wrong md5 or a failed JSONL check leaves it pending, to be completed again).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session

from contract.blobstore import BlobStore
from contract.layout import upload_prefix
from service.config import Settings
from service.db.schema import File, Project, Upload, UploadPart
from service.db.session import after_commit
from service.errors import InvalidRequest, NotFound, shown
from service.files import service as files
from service.files.upload import MAX_FILENAME_CHARS
from service.protocol import uploads as wire
from service.protocol.files import UPLOAD_PURPOSES
from service.uploads.mime import check_mime_type

STALE_COMPLETION_S = 3600  # a completion claim this old belongs to a process that died


def now() -> int:
    return int(time.time())


def upload_not_found(upload_id: str) -> NotFound:
    return NotFound(f"No such Upload object: {shown(upload_id)}", param="upload_id")


def status_of(row: Upload, now: int) -> wire.UploadStatus:
    if row.status == "pending" and row.completing_at is None and row.expires_at <= now:
        return "expired"
    return cast(wire.UploadStatus, row.status)


def to_wire(row: Upload, file: File | None = None, now: int | None = None) -> wire.Upload:
    return wire.Upload(
        id=row.id,
        bytes=row.bytes,
        created_at=row.created_at,
        expires_at=row.expires_at,
        filename=row.filename,
        purpose=row.purpose,
        status=status_of(row, int(time.time()) if now is None else now),
        file=files.to_wire(file) if file is not None else None,
    )


def _check_filename(name: str) -> None:
    bad = sorted({c for c in name if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0})
    if bad:
        codes = ", ".join(f"\\x{ord(c):02x}" for c in bad)
        raise InvalidRequest(f"Invalid 'filename': it contains control characters ({codes}).", param="filename")
    if not name or len(name) > MAX_FILENAME_CHARS or "/" in name or "\\" in name:
        raise InvalidRequest(
            f"Invalid 'filename': it must be 1 to {MAX_FILENAME_CHARS} characters without '/' or '\\'.",
            param="filename",
        )


def create(
    session: Session, project: Project, params: wire.UploadCreateParams, settings: Settings, upload_id: str
) -> Upload:
    if params.purpose not in UPLOAD_PURPOSES:
        raise InvalidRequest(
            f"Invalid 'purpose': {shown(params.purpose)!r}. Supported values are: "
            + ", ".join(repr(p) for p in UPLOAD_PURPOSES)
            + ".",
            param="purpose",
        )
    if not 1 <= params.bytes <= settings.upload_max_bytes:
        raise InvalidRequest(
            f"Invalid 'bytes': {params.bytes}. An Upload holds 1 to {settings.upload_max_bytes} bytes.", param="bytes"
        )
    _check_filename(params.filename)
    check_mime_type(params.purpose, params.mime_type)
    now = int(time.time())
    fields: dict[str, str] = {}  # the File's expiry, checked as POST /v1/files checks it (batch: 30 days by default)
    if params.expires_after is not None:
        fields = {
            "expires_after[anchor]": params.expires_after.anchor,
            "expires_after[seconds]": str(params.expires_after.seconds),
        }
    file_expires_at = files._expires_at(fields, params.purpose, now)
    expires_after_s = None if file_expires_at is None else file_expires_at - now
    row = Upload(
        id=upload_id,
        project_id=project.id,
        filename=params.filename,
        purpose=params.purpose,
        mime_type=params.mime_type,
        bytes=params.bytes,
        status="pending",
        created_at=now,
        expires_at=now + settings.upload_expiry_s,
        file_expires_after_s=expires_after_s,
    )
    session.add(row)
    session.flush()
    return row


def get(session: Session, project: Project, upload_id: str, *, lock: bool = False) -> Upload:
    query = select(Upload).where(Upload.id == upload_id, Upload.project_id == project.id)
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise upload_not_found(upload_id)
    return row


def check_open(row: Upload, now: int, action: str) -> None:
    """Refuse ``action`` (e.g. 'add a part to') unless the upload is pending and not being completed."""
    status = status_of(row, now)
    if status != "pending":
        raise InvalidRequest(f"Cannot {action} Upload {row.id}: it is {status}.", param="upload_id")
    if row.completing_at is not None:
        raise InvalidRequest(f"Cannot {action} Upload {row.id}: it is being completed.", param="upload_id")


def _move(session: Session, row: Upload, action: str, *, claimed: bool, now: int, **values: object) -> None:
    """Change a pending upload only if it still is (and is, or is not, being completed): one
    conditional UPDATE, so two requests that both read it pending cannot both act (SQLite has no
    row locks; PostgreSQL's FOR UPDATE in ``get`` makes the loser wait and then fail here)."""
    being_completed = Upload.completing_at.is_not(None) if claimed else Upload.completing_at.is_(None)
    still = [Upload.id == row.id, Upload.status == "pending", being_completed]
    if not claimed:
        still.append(Upload.expires_at > now)
    result = session.execute(update(Upload).where(*still).values(**values).execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidRequest(
            f"Cannot {action} Upload {row.id}: another request changed it meanwhile.", param="upload_id"
        )
    session.refresh(row)


# Parts


def record_part(session: Session, project: Project, upload_id: str, part_id: str, key: str, size: int) -> UploadPart:
    """Record a part whose bytes are stored at ``key`` (the caller deletes them if this raises)."""
    row = get(session, project, upload_id, lock=True)
    check_open(row, int(time.time()), "add a part to")
    if size == 0:
        raise InvalidRequest("The 'data' part is empty; a Part holds at least one byte.", param="data")
    held = (
        session.scalar(select(func.coalesce(func.sum(UploadPart.bytes), 0)).where(UploadPart.upload_id == row.id)) or 0
    )
    if held + size > row.bytes:
        raise InvalidRequest(
            f"This part of {size} bytes would bring Upload {row.id} to {held + size} bytes, more than the "
            f"{row.bytes} 'bytes' it was created with.",
            param="data",
        )
    part = UploadPart(id=part_id, upload_id=row.id, bytes=size, storage_key=key, created_at=int(time.time()))
    session.add(part)
    session.flush()
    return part


# Completion


@dataclass(frozen=True)
class Claim:
    upload_id: str
    purpose: str
    filename: str
    bytes: int
    part_keys: list[str]


def _check_md5(md5: str | None) -> None:
    if md5 is not None and (len(md5) != 32 or any(c not in "0123456789abcdefABCDEF" for c in md5)):
        raise InvalidRequest(f"Invalid 'md5': {shown(md5)!r} is not 32 hexadecimal digits.", param="md5")


def claim_completion(session: Session, project: Project, upload_id: str, params: wire.UploadCompleteParams) -> Claim:
    """Check the part list against the upload and mark it as being completed."""
    row = get(session, project, upload_id, lock=True)
    now = int(time.time())
    check_open(row, now, "complete")
    _check_md5(params.md5)
    if not params.part_ids:
        raise InvalidRequest("'part_ids' is empty: list the Upload's Part ids in order.", param="part_ids")
    seen: set[str] = set()
    for i, part_id in enumerate(params.part_ids):
        if part_id in seen:
            raise InvalidRequest(f"Part {shown(part_id)} is listed twice (part_ids[{i}]).", param="part_ids")
        seen.add(part_id)
    parts = {
        p.id: p
        for p in session.scalars(select(UploadPart).where(UploadPart.upload_id == row.id, UploadPart.id.in_(seen)))
    }
    for i, part_id in enumerate(params.part_ids):
        if part_id not in parts:
            raise InvalidRequest(
                f"part_ids[{i}] = {shown(part_id)!r} is not a Part of Upload {row.id}.", param="part_ids"
            )
    total = sum(parts[p].bytes for p in params.part_ids)
    if total != row.bytes:
        raise InvalidRequest(
            f"The listed parts hold {total} bytes, but Upload {row.id} was created with 'bytes' {row.bytes}.",
            param="bytes",
        )
    _move(session, row, "complete", claimed=False, now=now, completing_at=now)
    return Claim(row.id, row.purpose, row.filename, row.bytes, [parts[p].storage_key for p in params.part_ids])


def release(session: Session, upload_id: str) -> None:
    """Give a failed completion's claim back: the upload is pending again."""
    session.execute(update(Upload).where(Upload.id == upload_id).values(completing_at=None))


def finish_completion(
    session: Session, store: BlobStore, project: Project, claim: Claim, file_id: str, key: str, sha256: str
) -> tuple[Upload, File]:
    """Record the File assembled at ``key`` and mark the upload completed; the part blobs go once
    that has committed."""
    row = get(session, project, claim.upload_id, lock=True)
    _move(session, row, "complete", claimed=True, now=now(), status="completed", file_id=file_id, completing_at=None)
    file = files.record_generated(
        session, project.id, file_id, key=key, filename=row.filename, purpose=row.purpose, size=row.bytes, sha256=sha256
    )
    if row.file_expires_after_s is not None:
        file.expires_at = file.created_at + row.file_expires_after_s
    session.execute(delete(UploadPart).where(UploadPart.upload_id == row.id))
    prefix = upload_prefix(row.id)
    after_commit(session, lambda: store.delete_prefix(prefix))
    session.flush()
    return row, file


def cancel(session: Session, project: Project, upload_id: str) -> Upload:
    row = get(session, project, upload_id, lock=True)
    check_open(row, now(), "cancel")
    _move(session, row, "cancel", claimed=False, now=now(), status="cancelled")  # the janitor deletes its parts
    return row


# The janitor's part


def expire_due(session: Session, now: int) -> int:
    """Record pending uploads past ``expires_at`` (and completions whose process died) as expired."""
    result = session.execute(
        update(Upload)
        .where(
            Upload.status == "pending",
            Upload.expires_at <= now,
            (Upload.completing_at.is_(None)) | (Upload.completing_at <= now - STALE_COMPLETION_S),
        )
        .values(status="expired", completing_at=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def with_parts_to_purge(session: Session, limit: int = 100) -> list[str]:
    """Cancelled or expired uploads that still have parts."""
    has_parts = exists().where(UploadPart.upload_id == Upload.id)
    return list(
        session.scalars(select(Upload.id).where(Upload.status.in_(("cancelled", "expired")), has_parts).limit(limit))
    )


def forget_parts(session: Session, upload_id: str) -> None:
    session.execute(delete(UploadPart).where(UploadPart.upload_id == upload_id))
