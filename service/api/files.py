"""/v1/files — thin router over service.files."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from contract.layout import file_key
from service import idempotency, ids
from service.api.deps import Ctx, CurrentProject, IdempotencyKey
from service.api.responses import wire
from service.files import service as files
from service.files.upload import receive_upload
from service.protocol.common import CursorPage
from service.protocol.files import FileDeleted, FileObject

router = APIRouter(prefix="/v1", tags=["files"])


@router.post("/files", response_model=FileObject)
async def create_file(
    request: Request, ctx: Ctx, project: CurrentProject, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    file_id = ids.file_id()
    upload = await receive_upload(
        request,
        ctx.store,
        file_key(file_id),
        max_bytes=ctx.settings.max_upload_bytes,
        max_line_bytes=ctx.settings.max_line_bytes,
    )
    ctx.metrics.upload_bytes.inc(upload.bytes)
    try:
        purpose, expires_at, now = files.check_upload(upload)
    except BaseException:
        await run_in_threadpool(ctx.store.delete, upload.key)
        raise
    fp = idempotency.fingerprint(
        "POST /v1/files", purpose, upload.filename or "", upload.sha256, str(sorted(upload.fields.items()))
    )

    def action(s: Session) -> tuple[int, dict[str, Any]]:
        row = files.record_upload(s, project, file_id, upload, purpose, expires_at, now)
        return 200, files.to_wire(row).model_dump()

    try:
        status, body = await run_in_threadpool(
            idempotency.run, ctx.db, project.id, idempotency_key, fp, action, lambda: ctx.store.delete(upload.key)
        )
    except BaseException:
        await run_in_threadpool(ctx.store.delete, upload.key)  # no row points at these bytes
        raise
    return JSONResponse(body, status_code=status)


@router.get("/files", response_model=CursorPage[FileObject])
def list_files(
    ctx: Ctx,
    project: CurrentProject,
    purpose: str | None = None,
    limit: Annotated[int | None, Query()] = None,
    order: str = "desc",
    after: str | None = None,
) -> Response:
    with ctx.db.session() as s:
        rows, more = files.list_files(s, project, purpose=purpose, limit=limit, order=order, after=after)
        return wire(CursorPage.of([files.to_wire(r) for r in rows], more))


@router.get("/files/{file_id}", response_model=FileObject)
def retrieve_file(file_id: str, ctx: Ctx, project: CurrentProject) -> Response:
    with ctx.db.session() as s:
        return wire(files.to_wire(files.get(s, project, file_id)))


@router.delete("/files/{file_id}", response_model=FileDeleted)
def delete_file(file_id: str, ctx: Ctx, project: CurrentProject) -> FileDeleted:
    with ctx.db.session() as s:
        files.delete(s, ctx.store, project, file_id)
    return FileDeleted(id=file_id)


@router.get("/files/{file_id}/content")
def file_content(file_id: str, ctx: Ctx, project: CurrentProject) -> StreamingResponse:
    with ctx.db.session() as s:
        row = files.get(s, project, file_id)
    # Names stored before control characters were refused at upload must not break the header.
    ascii_name = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in row.filename)
    return StreamingResponse(
        files.read(ctx.store, row),
        media_type="application/octet-stream",
        headers={
            "content-length": str(row.bytes),
            "content-disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(row.filename)}",
        },
    )
