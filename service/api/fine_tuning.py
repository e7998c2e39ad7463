"""/v1/fine_tuning/jobs — thin router over service.jobs; and hone's extensions beside it,
/v1/fine_tuning/dataset_checks and /v1/fine_tuning/methods (service.jobs.dataset_check)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.responses import Response

from service import idempotency
from service.api.deps import Ctx, CurrentProject, IdempotencyKey
from service.api.responses import wire
from service.db.schema import Job, Project
from service.jobs import dataset_check, events
from service.jobs import service as jobs
from service.protocol.common import CursorPage
from service.protocol.fine_tuning import (
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobCreateParams,
    FineTuningJobEvent,
)
from service.protocol.fine_tuning_extensions import DatasetCheck, DatasetCheckParams, MethodList

router = APIRouter(prefix="/v1/fine_tuning", tags=["fine_tuning"])
_METADATA_PARAM = re.compile(r"^metadata\[(.+)\]$")


@router.post("/dataset_checks", response_model=DatasetCheck)
def check_dataset(params: DatasetCheckParams, ctx: Ctx, project: CurrentProject) -> Response:
    """hone's extension: a job's data validation before the job, with its first problems."""
    with dataset_check.slot(ctx.dataset_checks, ctx.settings.dataset_check_concurrency):
        return wire(
            dataset_check.check(ctx.db, ctx.store, ctx.catalog, ctx.settings, ctx.token_counters, project, params)
        )


@router.get("/methods", response_model=MethodList)
def list_methods(project: CurrentProject) -> Response:
    """hone's extension: the training methods and their hyperparameters ("auto" explained)."""
    return wire(dataset_check.methods())


@router.post("/jobs", response_model=FineTuningJob)
def create_job(
    params: FineTuningJobCreateParams, ctx: Ctx, project: CurrentProject, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    fp = idempotency.fingerprint(
        "POST /v1/fine_tuning/jobs", json.dumps(params.model_dump(mode="json", exclude_unset=True), sort_keys=True)
    )

    def action(s: Session) -> tuple[int, dict]:
        job = jobs.create(s, project, params, ctx.catalog, ctx.settings.accelerator)
        return 200, jobs.to_wire(job).model_dump(mode="json")

    status, body = idempotency.run(ctx.db, project.id, idempotency_key, fp, action)
    ctx.loops.kick()
    return JSONResponse(body, status_code=status)


@router.get("/jobs", response_model=CursorPage[FineTuningJob])
def list_jobs(
    request: Request,
    ctx: Ctx,
    project: CurrentProject,
    after: str | None = None,
    limit: Annotated[int | None, Query()] = None,
) -> Response:
    metadata = {m.group(1): v for k, v in request.query_params.items() if (m := _METADATA_PARAM.match(k))}
    with ctx.db.session() as s:
        rows, more = jobs.list_jobs(s, project, after=after, limit=limit, metadata=metadata)
        return wire(CursorPage.of([jobs.to_wire(j) for j in rows], more))


@router.get("/jobs/{job_id}", response_model=FineTuningJob)
def retrieve_job(job_id: str, ctx: Ctx, project: CurrentProject) -> Response:
    with ctx.db.session() as s:
        return wire(jobs.to_wire(jobs.get(s, project, job_id)))


def _transition(
    ctx: Ctx, project: Project, job_id: str, key: str | None, name: str, change: Callable[[Session, Project, str], Job]
) -> JSONResponse:
    def action(s: Session) -> tuple[int, dict]:
        return 200, jobs.to_wire(change(s, project, job_id)).model_dump(mode="json")

    fp = idempotency.fingerprint(f"POST /v1/fine_tuning/jobs/{job_id}/{name}")
    status, body = idempotency.run(ctx.db, project.id, key, fp, action)
    ctx.loops.kick()
    return JSONResponse(body, status_code=status)


@router.post("/jobs/{job_id}/cancel", response_model=FineTuningJob)
def cancel_job(job_id: str, ctx: Ctx, project: CurrentProject, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    return _transition(ctx, project, job_id, idempotency_key, "cancel", jobs.cancel)


@router.post("/jobs/{job_id}/pause", response_model=FineTuningJob)
def pause_job(job_id: str, ctx: Ctx, project: CurrentProject, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    return _transition(ctx, project, job_id, idempotency_key, "pause", jobs.pause)


@router.post("/jobs/{job_id}/resume", response_model=FineTuningJob)
def resume_job(job_id: str, ctx: Ctx, project: CurrentProject, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    return _transition(ctx, project, job_id, idempotency_key, "resume", jobs.resume)


@router.get("/jobs/{job_id}/events", response_model=CursorPage[FineTuningJobEvent])
def list_events(
    job_id: str,
    ctx: Ctx,
    project: CurrentProject,
    after: str | None = None,
    limit: Annotated[int | None, Query()] = None,
) -> Response:
    with ctx.db.session() as s:
        rows, more = jobs.list_events(s, project, job_id, after=after, limit=limit)
        return wire(CursorPage.of([events.to_wire(e) for e in rows], more))


@router.get("/jobs/{job_id}/checkpoints", response_model=CursorPage[FineTuningJobCheckpoint])
def list_checkpoints(
    job_id: str,
    ctx: Ctx,
    project: CurrentProject,
    after: str | None = None,
    limit: Annotated[int | None, Query()] = None,
) -> Response:
    with ctx.db.session() as s:
        rows, more = jobs.list_checkpoints(s, project, job_id, after=after, limit=limit)
        return wire(CursorPage.of([jobs.checkpoint_to_wire(c) for c in rows], more))
