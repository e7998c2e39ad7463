"""/v1/chat/completions, /v1/completions, /v1/responses and /v1/embeddings — the gateway to vLLM. Only the
caller's project's models (and the base models) get through; the body goes upstream as sent
except for what service.gateway.requests checks or adds per endpoint (usage reporting on
streams; the Responses API's stateful parameters are refused). Nothing is stored, so the
Responses API's retrieve, delete, cancel and input-items calls answer 404 for every id."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from service.api.deps import Ctx, CurrentProject
from service.errors import InvalidRequest, NotFound
from service.gateway.proxy import Relay
from service.gateway.requests import NOT_STORED, PREPARE, check_runner
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

    prepared = PREPARE[path](payload)
    if prepared.changed:
        body = json.dumps(payload).encode()
    base = await run_in_threadpool(lookup)
    entry = ctx.catalog.get(base)
    assert entry is not None and ctx.gateway is not None
    check_runner(path, entry.runner, model)
    return await ctx.gateway.forward(
        path,
        body,
        base=base,
        model=model,
        upstreams=ctx.gateway.source.upstreams(entry),
        stream=payload.get("stream") is True,
        relay=Relay(project.id, model, strip_usage=prepared.strip_usage, responses=prepared.responses),
    )


@router.post("/chat/completions")
async def chat_completions(request: Request, ctx: Ctx, project: CurrentProject) -> Response:
    return await _forward("/v1/chat/completions", request, ctx, project)


@router.post("/completions")
async def completions(request: Request, ctx: Ctx, project: CurrentProject) -> Response:
    return await _forward("/v1/completions", request, ctx, project)


@router.post("/responses")
async def create_response(request: Request, ctx: Ctx, project: CurrentProject) -> Response:
    return await _forward("/v1/responses", request, ctx, project)


@router.post("/embeddings")
async def embeddings(request: Request, ctx: Ctx, project: CurrentProject) -> Response:
    return await _forward("/v1/embeddings", request, ctx, project)


def _not_stored(response_id: str) -> NotFound:
    return NotFound(
        f"No response found with id '{response_id}'. {NOT_STORED} Responses are created as with store: false.",
        param="response_id",
    )


@router.get("/responses/{response_id}")
@router.delete("/responses/{response_id}")
@router.post("/responses/{response_id}/cancel")
@router.get("/responses/{response_id}/input_items")
def stored_response(response_id: str, project: CurrentProject) -> Response:
    raise _not_stored(response_id)
