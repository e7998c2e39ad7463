"""/v1/evals, /v1/evals/{id}/runs and their output items — thin router over service.evals."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from service import ids
from service.api.deps import Ctx, CurrentProject
from service.api.responses import wire
from service.context import AppContext
from service.evals import evals, output_items, runs
from service.protocol.common import CursorPage
from service.protocol.evals import (
    Eval,
    EvalCreateParams,
    EvalDeleted,
    EvalRun,
    EvalRunCreateParams,
    EvalRunDeleted,
    EvalRunOutputItem,
    EvalUpdateParams,
)

router = APIRouter(prefix="/v1", tags=["evals"])
Limit = Annotated[int | None, Query()]


def _created(model: BaseModel) -> Response:
    """The spec answers both creates with 201."""
    return Response(model.model_dump_json(), status_code=201, media_type="application/json")


def _base_url(request: Request, ctx: AppContext) -> str:
    return ctx.settings.public_url or str(request.base_url)


def _kick(ctx: AppContext) -> None:
    if ctx.eval_runner is not None:
        ctx.eval_runner.kick()


# ----------------------------------------------------------------------------- evals


@router.post("/evals", response_model=Eval, status_code=201)
def create_eval(params: EvalCreateParams, ctx: Ctx, project: CurrentProject) -> Response:
    with ctx.db.session() as s:
        return _created(evals.to_wire(evals.create(s, project, params, ctx.settings.evals, ids.eval_id())))


@router.get("/evals", response_model=CursorPage[Eval])
def list_evals(
    ctx: Ctx,
    project: CurrentProject,
    after: str | None = None,
    limit: Limit = None,
    order: str = "asc",
    order_by: str = "created_at",
) -> Response:
    with ctx.db.session() as s:
        rows, more = evals.list_evals(s, project, after=after, limit=limit, order=order, order_by=order_by)
        return wire(CursorPage.of([evals.to_wire(r) for r in rows], more))


@router.get("/evals/{eval_id}", response_model=Eval)
def retrieve_eval(eval_id: str, ctx: Ctx, project: CurrentProject) -> Response:
    with ctx.db.session() as s:
        return wire(evals.to_wire(evals.get(s, project, eval_id)))


@router.post("/evals/{eval_id}", response_model=Eval)
def update_eval(eval_id: str, params: EvalUpdateParams, ctx: Ctx, project: CurrentProject) -> Response:
    with ctx.db.session() as s:
        return wire(evals.to_wire(evals.update(s, project, eval_id, params)))


@router.delete("/evals/{eval_id}", response_model=EvalDeleted)
def delete_eval(eval_id: str, ctx: Ctx, project: CurrentProject) -> Response:
    with ctx.db.session() as s:
        evals.delete_eval(s, project, eval_id)
    _kick(ctx)  # a runner executing one of its runs lets it go now, not at its next lease renewal
    return wire(EvalDeleted(eval_id=eval_id))


# ----------------------------------------------------------------------------- runs


@router.post("/evals/{eval_id}/runs", response_model=EvalRun, status_code=201)
def create_run(
    eval_id: str, params: EvalRunCreateParams, request: Request, ctx: Ctx, project: CurrentProject
) -> Response:
    with ctx.db.session() as s:
        row = runs.create(
            s, project, eval_id, params, catalog=ctx.catalog, settings=ctx.settings.evals, run_id=ids.eval_run_id()
        )
        body = runs.to_wire(row, _base_url(request, ctx))
    _kick(ctx)  # after the commit: the runner finds the run
    return _created(body)


@router.get("/evals/{eval_id}/runs", response_model=CursorPage[EvalRun])
def list_runs(
    eval_id: str,
    request: Request,
    ctx: Ctx,
    project: CurrentProject,
    after: str | None = None,
    limit: Limit = None,
    order: str = "asc",
    status: str | None = None,
) -> Response:
    base = _base_url(request, ctx)
    with ctx.db.session() as s:
        rows, more = runs.list_runs(s, project, eval_id, after=after, limit=limit, order=order, status=status)
        return wire(CursorPage.of([runs.to_wire(r, base) for r in rows], more))


@router.get("/evals/{eval_id}/runs/{run_id}", response_model=EvalRun)
def retrieve_run(eval_id: str, run_id: str, request: Request, ctx: Ctx, project: CurrentProject) -> Response:
    with ctx.db.session() as s:
        return wire(runs.to_wire(runs.get(s, project, eval_id, run_id), _base_url(request, ctx)))


@router.post("/evals/{eval_id}/runs/{run_id}", response_model=EvalRun)
@router.post("/evals/{eval_id}/runs/{run_id}/cancel", response_model=EvalRun)  # the path openai-python calls
def cancel_run(eval_id: str, run_id: str, request: Request, ctx: Ctx, project: CurrentProject) -> Response:
    with ctx.db.session() as s:
        body = runs.to_wire(runs.cancel(s, project, eval_id, run_id), _base_url(request, ctx))
    _kick(ctx)
    return wire(body)


@router.delete("/evals/{eval_id}/runs/{run_id}", response_model=EvalRunDeleted)
def delete_run(eval_id: str, run_id: str, ctx: Ctx, project: CurrentProject) -> Response:
    with ctx.db.session() as s:
        runs.delete_run(s, project, eval_id, run_id)
    _kick(ctx)
    return wire(EvalRunDeleted(run_id=run_id))


# ----------------------------------------------------------------------------- output items


@router.get("/evals/{eval_id}/runs/{run_id}/output_items", response_model=CursorPage[EvalRunOutputItem])
def list_output_items(
    eval_id: str,
    run_id: str,
    ctx: Ctx,
    project: CurrentProject,
    after: str | None = None,
    limit: Limit = None,
    order: str = "asc",
    status: str | None = None,
) -> Response:
    with ctx.db.session() as s:
        rows, more = output_items.list_items(
            s, project, eval_id, run_id, after=after, limit=limit, order=order, status=status
        )
        return wire(CursorPage.of([output_items.to_wire(r) for r in rows], more))


@router.get("/evals/{eval_id}/runs/{run_id}/output_items/{output_item_id}", response_model=EvalRunOutputItem)
def retrieve_output_item(eval_id: str, run_id: str, output_item_id: str, ctx: Ctx, project: CurrentProject) -> Response:
    with ctx.db.session() as s:
        return wire(output_items.to_wire(output_items.get(s, project, eval_id, run_id, output_item_id)))
