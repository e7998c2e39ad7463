"""/v1/fine_tuning/alpha/graders/run and /validate — thin router over service.evals.grader_run."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from service.api.deps import Ctx, CurrentProject
from service.api.responses import wire
from service.evals import grader_run
from service.evals.graders.base import GraderOptions
from service.evals.models_client import GatewayModels
from service.protocol.graders import RunGraderParams, RunGraderResponse, ValidateGraderParams, ValidateGraderResponse

router = APIRouter(prefix="/v1/fine_tuning/alpha/graders", tags=["graders"])


@router.post("/validate", response_model=ValidateGraderResponse)
def validate_grader(params: ValidateGraderParams, ctx: Ctx, project: CurrentProject) -> Response:
    return wire(grader_run.validate(params, GraderOptions.of(ctx.settings.evals)))


@router.post("/run", response_model=RunGraderResponse)
async def run_grader(params: RunGraderParams, ctx: Ctx, project: CurrentProject) -> Response:
    options = GraderOptions.of(ctx.settings.evals)
    return wire(await grader_run.run(params, GatewayModels(ctx, project), options))
