"""What a trainer attempt reports over the internal API: events, checkpoints, progress, the
final result, or a fatal failure. All idempotent: a retried report changes nothing twice."""

from __future__ import annotations

import hashlib
import time

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service import ids
from service.blobstore import BlobStore
from service.db.schema import Checkpoint, FineTunedModel, Job
from service.errors import InvalidRequest
from service.files import service as files
from service.jobs import events, lifecycle, naming
from service.models import index
from trainer.spec import CheckpointReport, CompletionReport, EventBatch, FailureReport

MANIFEST = "manifest.json"


def output_key(job_id: str) -> str:
    return f"jobs/{job_id}"


def _own_key(store: BlobStore, job: Job, uri: str, what: str) -> str:
    """The blob key behind ``uri``, which must lie inside this job's output prefix."""
    try:
        key = store.key_from_uri(uri)
    except ValueError as e:
        raise InvalidRequest(f"{what}: {e}", param="uri") from e
    if not key.startswith(output_key(job.id) + "/"):
        raise InvalidRequest(f"{what}: {uri} is outside this job's output prefix.", param="uri")
    return key


def record_events(session: Session, job: Job, batch: EventBatch) -> None:
    for ev in batch.events:
        events.add(session, job.id, ev.message, level=ev.level, type=ev.type, data=ev.data,
                   client_id=ev.id, created_at=ev.created_at)


def record_checkpoint(session: Session, store: BlobStore, job: Job, report: CheckpointReport,
                      keep: int) -> list[tuple[str, str]]:
    """Register a complete checkpoint; return (name, URI) of older ones pruned beyond ``keep``
    (OpenAI keeps the last three), for the caller to delete after the commit."""
    existing = session.scalar(select(Checkpoint).where(Checkpoint.job_id == job.id,
                                                       Checkpoint.client_id == report.id))
    if existing is not None:
        return []
    key = _own_key(store, job, report.uri, "checkpoint")
    if not store.exists(f"{key}/{MANIFEST}"):
        raise InvalidRequest(f"checkpoint {report.uri} has no {MANIFEST}: it is incomplete.",
                             param="uri")
    name = naming.checkpoint_name(job.base_model, _project_name(job), job.suffix, report.step_number)
    now = int(time.time())
    row = Checkpoint(id=ids.checkpoint_id(), job_id=job.id, client_id=report.id,
                     step_number=report.step_number, metrics=dict(report.metrics),
                     model_name=name, uri=store.uri(key), created_at=now)
    session.add(row)
    session.add(FineTunedModel(name=name, project_id=job.project_id, job_id=job.id,
                               base_model=job.base_model, kind="checkpoint", uri=row.uri,
                               created_at=now))
    index.publish(store, name, row.uri, job.base_model)
    events.add(session, job.id, f"Checkpoint created at step {report.step_number} with "
               f"Snapshot ID: {name}", data={"step": report.step_number})
    session.flush()
    older = list(session.scalars(select(Checkpoint).where(Checkpoint.job_id == job.id)
                                 .order_by(Checkpoint.step_number.desc(), Checkpoint.seq.desc()).offset(keep)))
    for old in older:
        session.execute(update(FineTunedModel).where(FineTunedModel.name == old.model_name).values(deleted=True))
        session.delete(old)
    return [(old.model_name, old.uri) for old in older]


def complete(session: Session, store: BlobStore, job: Job, report: CompletionReport) -> None:
    if job.status == "succeeded":
        return
    if job.status not in lifecycle.ACTIVE:
        raise InvalidRequest(f"job {job.id} is '{job.status}'; a result is no longer accepted.")
    key = _own_key(store, job, report.adapter_uri, "adapter")
    if not store.exists(f"{key}/{MANIFEST}"):
        raise InvalidRequest(f"adapter {report.adapter_uri} has no {MANIFEST}.", param="adapter_uri")
    now = int(time.time())
    if report.result_file_uri:
        rkey = _own_key(store, job, report.result_file_uri, "result file")
        digest, size = hashlib.sha256(), 0
        for chunk in store.read(rkey):
            digest.update(chunk)
            size += len(chunk)
        result = files.record_generated(session, job.project_id, ids.file_id(), key=rkey,
                                        filename="step_metrics.csv", purpose="fine-tune-results",
                                        size=size, sha256=digest.hexdigest())
        job.result_files = [result.id]
    session.add(FineTunedModel(name=job.planned_model, project_id=job.project_id, job_id=job.id,
                               base_model=job.base_model, kind="final", uri=store.uri(key),
                               created_at=now))
    index.publish(store, job.planned_model, store.uri(key), job.base_model)
    job.fine_tuned_model = job.planned_model
    job.trained_tokens = report.trained_tokens
    job.status = "succeeded"
    job.finished_at = now
    job.estimated_finish = None
    events.add(session, job.id, f"New fine-tuned model created: {job.planned_model}")
    events.add(session, job.id, "The job has successfully completed")


def failed(session: Session, job: Job, report: FailureReport) -> None:
    if job.status in lifecycle.ACTIVE:
        lifecycle.fail(session, job, report.code, report.message)


def _project_name(job: Job) -> str:
    # planned_model is ft:{base}:{project}:...; the project name is its third field.
    return job.planned_model.split(":")[2]
