"""/internal/v1 — the trainer's reporting API, authenticated with the per-attempt token.
Not part of the OpenAI surface; in the cluster only trainer pods may reach it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from sqlalchemy.orm import Session

from contract.spec import (
    CheckpointReport,
    CompletionReport,
    EventBatch,
    FailureReport,
    ProgressReport,
    ReportAck,
    ResumePoint,
)
from service import auth
from service.api.deps import Ctx
from service.db.schema import Job
from service.errors import AuthenticationFailed, NotFound
from service.jobs import lifecycle, reports

router = APIRouter(prefix="/internal/v1/jobs/{job_id}", tags=["internal"])


def _token(authorization: Annotated[str | None, Header()] = None) -> str:
    token = auth.bearer(authorization)
    if token is None:
        raise AuthenticationFailed("Missing job report token.")
    return token


Token = Annotated[str, Depends(_token)]


def _reporting_job(s: Session, job_id: str, token: str) -> Job:
    """The job whose active attempt holds ``token``, locked; the call counts as its heartbeat."""
    job = lifecycle.job_by_id(s, job_id, for_update=True)
    if job is None:
        raise NotFound(f"Fine-tuning job {job_id} not found.")
    if not lifecycle.report_allowed(job, token):
        raise AuthenticationFailed("Invalid report token for this job attempt.")
    lifecycle.attempt_admitted(s, job)  # it reports, so it runs (even before the reconciler saw it admitted)
    job.last_report_at = time.time()  # any report is a heartbeat
    return job


def _report(ctx: Ctx, job_id: str, token: str, apply: Callable[[Session, Job], object]) -> ReportAck:
    with ctx.db.session() as s:
        job = _reporting_job(s, job_id, token)
        apply(s, job)
        return ReportAck(action=lifecycle.next_action(job))


@router.get("/resume-point", response_model=ResumePoint)
def get_resume_point(job_id: str, ctx: Ctx, token: Token) -> ResumePoint:
    with ctx.db.session() as s:
        job = _reporting_job(s, job_id, token)
        return ResumePoint(resume_uri=lifecycle.newest_checkpoint_uri(s, job.id))


@router.post("/events", response_model=ReportAck)
def post_events(job_id: str, batch: EventBatch, ctx: Ctx, token: Token) -> ReportAck:
    return _report(ctx, job_id, token, lambda s, job: reports.record_events(s, job, batch))


@router.post("/checkpoints", response_model=ReportAck)
def post_checkpoint(job_id: str, body: CheckpointReport, ctx: Ctx, token: Token) -> ReportAck:
    return _report(
        ctx,
        job_id,
        token,
        lambda s, job: reports.record_checkpoint(s, ctx.store, job, body, ctx.settings.keep_checkpoints),
    )


@router.post("/progress", response_model=ReportAck)
def post_progress(job_id: str, body: ProgressReport, ctx: Ctx, token: Token) -> ReportAck:
    return _report(
        ctx,
        job_id,
        token,
        lambda s, job: lifecycle.set_progress(
            job, trained_tokens=body.trained_tokens, estimated_finish=body.estimated_finish
        ),
    )


@router.post("/complete", response_model=ReportAck)
def post_complete(job_id: str, body: CompletionReport, ctx: Ctx, token: Token) -> ReportAck:
    return _report(ctx, job_id, token, lambda s, job: reports.complete(s, ctx.store, job, body))


@router.post("/fail", response_model=ReportAck)
def post_fail(job_id: str, body: FailureReport, ctx: Ctx, token: Token) -> ReportAck:
    return _report(ctx, job_id, token, lambda s, job: reports.failed(s, job, body))
