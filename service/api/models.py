"""/v1/models — base models from the catalog plus the project's fine-tuned models.
Model names contain ':' (``ft:...``); the path converter accepts them."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from service.api.deps import Ctx, CurrentProject
from service.api.responses import wire
from service.models import service as models
from service.protocol.models import Model, ModelDeleted, ModelList

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models", response_model=ModelList)
def list_models(ctx: Ctx, project: CurrentProject) -> Response:
    with ctx.db.session() as s:
        return wire(ModelList(data=models.list_models(s, project, ctx.catalog)))


@router.get("/models/{model:path}", response_model=Model)
def retrieve_model(model: str, ctx: Ctx, project: CurrentProject) -> Response:
    with ctx.db.session() as s:
        return wire(models.get(s, project, ctx.catalog, model))


@router.delete("/models/{model:path}", response_model=ModelDeleted)
def delete_model(model: str, ctx: Ctx, project: CurrentProject) -> ModelDeleted:
    with ctx.db.session() as s:
        models.delete(s, ctx.store, project, ctx.catalog, model)
    return ModelDeleted(id=model)
