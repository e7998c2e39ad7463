"""Wire types of /v1/uploads, named as in openai-python (``Upload``, ``UploadPart``, the create
and complete params)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from service.protocol.common import RequestModel
from service.protocol.files import FileObject

UploadStatus = Literal["pending", "completed", "cancelled", "expired"]


class ExpiresAfter(RequestModel):
    anchor: str
    seconds: int


class UploadCreateParams(RequestModel):
    bytes: int
    filename: str
    mime_type: str
    purpose: str
    expires_after: ExpiresAfter | None = None


class UploadCompleteParams(RequestModel):
    part_ids: list[str]
    md5: str | None = None


class Upload(BaseModel):
    id: str
    object: Literal["upload"] = "upload"
    bytes: int
    created_at: int
    expires_at: int
    filename: str
    purpose: str
    status: UploadStatus
    file: FileObject | None = None


class UploadPart(BaseModel):
    id: str
    object: Literal["upload.part"] = "upload.part"
    created_at: int
    upload_id: str
