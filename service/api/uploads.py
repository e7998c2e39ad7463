"""/v1/uploads — thin router over service.uploads. Parts stream to the blob store through the
same multipart receiver as /v1/files (the request guard lets them through unbuffered)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from contract.layout import file_key, upload_part_key
from service import ids
from service.api.deps import Ctx, CurrentProject
from service.api.responses import wire
from service.files.upload import receive_upload
from service.protocol.uploads import Upload, UploadCompleteParams, UploadCreateParams, UploadPart
from service.uploads import service as uploads
from service.uploads.assemble import assemble

router = APIRouter(prefix="/v1", tags=["uploads"])


@router.post("/uploads", response_model=Upload)
def create_upload(params: UploadCreateParams, ctx: Ctx, project: CurrentProject) -> Response:
    with ctx.db.session() as s:
        row = uploads.create(s, project, params, ctx.settings, ids.upload_id())
        return wire(uploads.to_wire(row))


@router.post("/uploads/{upload_id}/parts", response_model=UploadPart)
async def add_part(upload_id: str, request: Request, ctx: Ctx, project: CurrentProject) -> Response:
    def check_open() -> None:  # before the body is read: a closed upload costs no transfer
        with ctx.db.session() as s:
            uploads.check_open(uploads.get(s, project, upload_id), uploads.now(), "add a part to")

    await run_in_threadpool(check_open)
    part_id = ids.upload_part_id()
    received = await receive_upload(
        request,
        ctx.store,
        upload_part_key(upload_id, part_id),
        max_bytes=ctx.settings.upload_part_max_bytes,
        max_line_bytes=ctx.settings.max_line_bytes,
        file_field="data",
        form_fields=(),
        check_jsonl=False,
    )
    ctx.metrics.upload_bytes.inc(received.bytes)

    def record() -> Response:
        with ctx.db.session() as s:
            part = uploads.record_part(s, project, upload_id, part_id, received.key, received.bytes)
            return wire(UploadPart(id=part.id, created_at=part.created_at, upload_id=upload_id))

    try:
        return await run_in_threadpool(record)
    except BaseException:
        await run_in_threadpool(ctx.store.delete, received.key)  # no row points at these bytes
        raise


@router.post("/uploads/{upload_id}/complete", response_model=Upload)
def complete_upload(upload_id: str, params: UploadCompleteParams, ctx: Ctx, project: CurrentProject) -> Response:
    with ctx.db.session() as s:
        claim = uploads.claim_completion(s, project, upload_id, params)
    file_id = ids.file_id()
    try:
        done = assemble(ctx.store, claim, file_key(file_id), md5=params.md5, max_line_bytes=ctx.settings.max_line_bytes)
        with ctx.db.session() as s:
            row, file = uploads.finish_completion(s, ctx.store, project, claim, file_id, file_key(file_id), done.sha256)
            return wire(uploads.to_wire(row, file))
    except BaseException:
        with ctx.db.session() as s:
            uploads.release(s, claim.upload_id)
        ctx.store.delete(file_key(file_id))  # no row points at it (the File row rolled back)
        raise


@router.post("/uploads/{upload_id}/cancel", response_model=Upload)
def cancel_upload(upload_id: str, ctx: Ctx, project: CurrentProject) -> Response:
    with ctx.db.session() as s:
        return wire(uploads.to_wire(uploads.cancel(s, project, upload_id)))
