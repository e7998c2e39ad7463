"""Checkpoint permission wire types (``/v1/fine_tuning/checkpoints/{model}/permissions``),
named as in openai-python's ``types.fine_tuning.checkpoints``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from service.protocol.common import CursorPage, RequestModel


class PermissionCreateParams(RequestModel):
    project_ids: list[str]  # how many, and which, is checked by service.models.permissions


class PermissionCreateResponse(BaseModel):
    """The ``checkpoint.permission`` object: one project a fine-tuned model is shared with."""

    id: str
    object: Literal["checkpoint.permission"] = "checkpoint.permission"
    created_at: int
    project_id: str


PermissionListResponse = PermissionCreateResponse
PermissionRetrieveResponse = CursorPage[PermissionCreateResponse]


class PermissionDeleteResponse(BaseModel):
    id: str
    object: Literal["checkpoint.permission"] = "checkpoint.permission"
    deleted: bool = True
