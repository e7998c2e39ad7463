"""/v1/chat/completions and /v1/completions — the gateway to vLLM. Only the caller's
project's models (and the base models) get through; the body goes upstream untouched."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from service.api.deps import Ctx, CurrentProject
from service.errors import InvalidRequest
from service.models import service as models

router = APIRouter(prefix="/v1", tags=["inference"])


async def _forward(path: str, request: Request, ctx: Ctx, project: CurrentProject) -> Response:
    body = await request.body()  # at most HONE_MAX_REQUEST_BYTES: the request guard checked it
    try:
        payload = json.loads(body)
    except ValueError as e:
        raise InvalidRequest(f"We could not parse the JSON body of your request: {e}.") from e
    except RecursionError:
        raise InvalidRequest("We could not parse the JSON body of your request: it is nested too deeply.") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")

    def lookup() -> str:
        with ctx.db.session() as s:
            return models.servable_base(s, project, ctx.catalog, model)

    base = await run_in_threadpool(lookup)
    entry = ctx.catalog.get(base)
    assert entry is not None and ctx.gateway is not None
    return await ctx.gateway.forward(
        path,
        body,
        base=base,
        model=model,
        upstreams=ctx.gateway.source.upstreams(entry),
        stream=payload.get("stream") is True,
    )


@router.post("/chat/completions")
async def chat_completions(request: Request, ctx: Ctx, project: CurrentProject) -> Response:
    return await _forward("/v1/chat/completions", request, ctx, project)


@router.post("/completions")
async def completions(request: Request, ctx: Ctx, project: CurrentProject) -> Response:
    return await _forward("/v1/completions", request, ctx, project)
