"""/v1/fine_tuning/checkpoints/{fine_tuned_model_checkpoint}/permissions — sharing a fine-tuned
model with other projects; thin router over service.models.permissions. Called with an
organization admin key (the request guard checks it). The path segment is a model name
(``ft:...``, a final model or a ``...:ckpt-step-N`` checkpoint); ':' is an ordinary path character."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response

from service.api.deps import Ctx, CurrentAdmin
from service.api.responses import wire
from service.models import permissions
from service.protocol.checkpoint_permissions import (
    PermissionCreateParams,
    PermissionDeleteResponse,
    PermissionRetrieveResponse,
)
from service.protocol.common import CursorPage

router = APIRouter(prefix="/v1/fine_tuning/checkpoints", tags=["fine_tuning"])


@router.post("/{fine_tuned_model_checkpoint}/permissions", response_model=PermissionRetrieveResponse)
def create_permissions(
    fine_tuned_model_checkpoint: str, params: PermissionCreateParams, ctx: Ctx, admin: CurrentAdmin
) -> Response:
    with ctx.db.session() as s:
        rows = permissions.create(s, ctx.catalog, fine_tuned_model_checkpoint, params.project_ids)
        return wire(CursorPage.of([permissions.to_wire(r) for r in rows], False))


@router.get("/{fine_tuned_model_checkpoint}/permissions", response_model=PermissionRetrieveResponse)
def list_permissions(
    fine_tuned_model_checkpoint: str,
    ctx: Ctx,
    admin: CurrentAdmin,
    project_id: str | None = None,
    after: str | None = None,
    limit: Annotated[int | None, Query()] = None,
    order: Literal["ascending", "descending"] | None = None,
) -> Response:
    with ctx.db.session() as s:
        rows, more = permissions.list_permissions(
            s, ctx.catalog, fine_tuned_model_checkpoint, project_id=project_id, after=after, limit=limit, order=order
        )
        return wire(CursorPage.of([permissions.to_wire(r) for r in rows], more))


@router.delete("/{fine_tuned_model_checkpoint}/permissions/{permission_id}", response_model=PermissionDeleteResponse)
def delete_permission(
    fine_tuned_model_checkpoint: str, permission_id: str, ctx: Ctx, admin: CurrentAdmin
) -> PermissionDeleteResponse:
    with ctx.db.session() as s:
        permissions.delete(s, fine_tuned_model_checkpoint, permission_id)
    return PermissionDeleteResponse(id=permission_id)
