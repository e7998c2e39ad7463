"""What a trainer attempt reports over the internal API: events, checkpoints, progress, the
final result, or a fatal failure. All idempotent: a retried report changes nothing twice."""

from __future__ import annotations

import hashlib
import time

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from contract.blobstore import BlobStore
from contract.layout import RESULT_CSV, JobLayout, manifest_key
from contract.names import ModelName
from contract.spec import CheckpointReport, CompletionReport, EventBatch, FailureReport
from service import ids
from service.db.schema import Checkpoint, FineTunedModel, Job
from service.errors import InvalidRequest
from service.files import service as files
from service.jobs import events, lifecycle, states
from service.jobs.states import ACTIVE
from service.models import service as models
from service.protocol.fine_tuning import JobStatus


def _own_key(store: BlobStore, job: Job, uri: str, what: str) -> str:
    """The blob key behind ``uri``, which must lie inside this job's output prefix."""
    try:
        key = store.key_from_uri(uri)
    except ValueError as e:
        raise InvalidRequest(f"{what}: {e}", param="uri") from e
    if not JobLayout.for_job(job.id).owns(key):
        raise InvalidRequest(f"{what}: {uri} is outside this job's output prefix.", param="uri")
    return key


def _require_manifest(store: BlobStore, key: str, uri: str, param: str) -> None:
    if not store.exists(manifest_key(key)):
        raise InvalidRequest(f"{uri} has no manifest.json: it is incomplete.", param=param)


def record_events(session: Session, job: Job, batch: EventBatch) -> None:
    for ev in batch.events:
        events.add(
            session,
            job.id,
            ev.message,
            level=ev.level,
            type=ev.type,
            data=ev.data,
            client_id=ev.id,
            created_at=ev.created_at,
        )


def record_checkpoint(session: Session, store: BlobStore, job: Job, report: CheckpointReport, keep: int) -> None:
    """Register a complete checkpoint; checkpoints older than the newest ``keep`` (OpenAI keeps
    three) are deleted, their blobs removed after the commit."""
    existing = session.scalar(select(Checkpoint).where(Checkpoint.job_id == job.id, Checkpoint.client_id == report.id))
    if existing is not None:
        return
    key = _own_key(store, job, report.uri, "checkpoint")
    _require_manifest(store, key, report.uri, "uri")
    name = str(ModelName(job.base_model, job.project_name, job.suffix, ids.model_short_id(), report.step_number))
    now = int(time.time())
    row = Checkpoint(
        id=ids.checkpoint_id(),
        job_id=job.id,
        client_id=report.id,
        step_number=report.step_number,
        metrics=dict(report.metrics),
        model_name=name,
        uri=store.uri(key),
        created_at=now,
    )
    session.add(row)
    models.publish(session, store, job, name, row.uri, "checkpoint", now)
    events.add(
        session,
        job.id,
        f"Checkpoint created at step {report.step_number} with Snapshot ID: {name}",
        data={"step": report.step_number},
    )
    session.flush()
    older = list(
        session.scalars(
            select(Checkpoint)
            .where(Checkpoint.job_id == job.id)
            .order_by(Checkpoint.step_number.desc(), Checkpoint.seq.desc())
            .offset(keep)
        )
    )
    for old in older:
        session.execute(update(FineTunedModel).where(FineTunedModel.name == old.model_name).values(deleted=True))
        session.delete(old)
        models.withdraw_after_commit(session, store, old.model_name, old.uri)


def complete(session: Session, store: BlobStore, job: Job, report: CompletionReport) -> None:
    if job.status == JobStatus.SUCCEEDED:
        return
    if job.status not in ACTIVE:
        raise InvalidRequest(f"job {job.id} is '{job.status}'; a result is no longer accepted.")
    key = _own_key(store, job, report.adapter_uri, "adapter")
    _require_manifest(store, key, report.adapter_uri, "adapter_uri")
    now = int(time.time())
    if report.result_file_uri:
        rkey = _own_key(store, job, report.result_file_uri, "result file")
        digest, size = hashlib.sha256(), 0
        for chunk in store.read(rkey):
            digest.update(chunk)
            size += len(chunk)
        result = files.record_generated(
            session,
            job.project_id,
            ids.file_id(),
            key=rkey,
            filename=RESULT_CSV,
            purpose="fine-tune-results",
            size=size,
            sha256=digest.hexdigest(),
        )
        job.result_files = [result.id]
    models.publish(session, store, job, job.planned_model, store.uri(key), "final", now)
    job.fine_tuned_model = job.planned_model
    job.trained_tokens = report.trained_tokens
    states.move(job, JobStatus.SUCCEEDED)
    job.finished_at = now
    job.estimated_finish = None
    events.add(session, job.id, f"New fine-tuned model created: {job.planned_model}")
    events.add(session, job.id, "The job has successfully completed")


def failed(session: Session, job: Job, report: FailureReport) -> None:
    if job.status in ACTIVE:
        lifecycle.fail(session, job, report.code, report.message)
