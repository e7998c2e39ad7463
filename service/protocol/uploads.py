"""Wire types of /v1/uploads, named as in openai-python (``Upload``, ``UploadPart``, the create
and complete params)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from service.protocol.files import FileObject

UploadStatus = Literal["pending", "completed", "cancelled", "expired"]


class ExpiresAfter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    anchor: str
    seconds: int


class UploadCreateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bytes: int
    filename: str
    mime_type: str
    purpose: str
    expires_after: ExpiresAfter | None = None


class UploadCompleteParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
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
