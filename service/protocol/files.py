from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel

UploadPurpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
FilePurpose = Literal[
    "assistants",
    "assistants_output",
    "batch",
    "batch_output",
    "fine-tune",
    "fine-tune-results",
    "vision",
    "user_data",
    "evals",
]
UPLOAD_PURPOSES: tuple[str, ...] = get_args(UploadPurpose)


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    expires_at: int | None = None
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    status_details: str | None = None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True
