"""The fine-tuning job resource: request-level checks at creation, reads, and the user's
state changes (cancel, pause, resume). Data checks happen later, in validation."""

from __future__ import annotations

import secrets
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from contract.hyperparameters import Hyperparameters as MethodHyperparameters
from contract.methods import DEFAULT_METHOD, METHODS, REFUSED, MethodSpec
from contract.names import SUFFIX, ModelName, is_fine_tuned_name
from service import ids
from service.catalog.catalog import BaseModelEntry, Catalog
from service.db.schema import Checkpoint, File, Job, JobEvent, Project
from service.errors import InvalidRequest, job_not_found, shown
from service.jobs import events, states
from service.models import service as models
from service.pagination import check_limit, paginate
from service.param_errors import invalid_choice
from service.protocol.fine_tuning import (
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobCreateParams,
    Hyperparameters,
    JobError,
    JobStatus,
)


def _method(params: FineTuningJobCreateParams) -> tuple[MethodSpec, MethodHyperparameters]:
    """The registered method the request asks for, and its hyperparameters with defaults."""
    method = params.method
    name = method.type if method else DEFAULT_METHOD
    if name in REFUSED:
        raise InvalidRequest(
            f"method.type {name!r} is not supported: {REFUSED[name]}. This server trains with {_known()}.",
            param="method.type",
            code="unsupported_method",
        )
    if name not in METHODS:
        raise invalid_choice("method.type", name, METHODS.names)
    spec = METHODS.get(name)
    sub = getattr(method, name, None) if method else None
    given = sub.hyperparameters if sub is not None else None
    if params.hyperparameters is not None and given is not None:
        raise InvalidRequest(
            "Specify hyperparameters in 'method' or in the deprecated 'hyperparameters', not both.",
            param="hyperparameters",
        )
    legacy = params.hyperparameters
    if legacy is not None and name != DEFAULT_METHOD:
        raise InvalidRequest(
            f"The deprecated 'hyperparameters' field applies to {DEFAULT_METHOD} jobs "
            f"only; put them in method.{name}.hyperparameters.",
            param="hyperparameters",
        )
    chosen = given or legacy
    hp = spec.hyperparameters.model_validate(chosen.model_dump() if chosen is not None else {})
    return spec, hp


def _known() -> str:
    return ", ".join(repr(n) for n in METHODS.names)


# Modules a LoRA adapter may target and still be served by vLLM's LoRA hot-swapping: the
# linear layers inside the transformer blocks. Embeddings and the LM head would need
# modules_to_save-style full copies, which serving refuses.
_UNSERVABLE_TARGETS = ("lm_head", "embed_tokens", "wte", "word_embeddings")


def _serving_gate(hp: MethodHyperparameters, entry: BaseModelEntry, accelerator: str, param: str) -> None:
    """Refuse at creation what the serving fleet (or this deployment's trainers) cannot do."""
    kind = hp.training_type
    if kind == "qlora" and accelerator != "cuda":
        raise InvalidRequest(
            "training_type 'qlora' needs a CUDA GPU (4-bit bitsandbytes); this deployment trains on CPU.",
            param=f"{param}.training_type",
            code="unsupported_training_type",
        )
    if kind == "full":
        return
    if hp.lora_rank > entry.max_lora_rank:
        raise InvalidRequest(
            f"lora_rank {hp.lora_rank} is above the max_lora_rank {entry.max_lora_rank} "
            f"that serving for {entry.name} can load.",
            param=f"{param}.lora_rank",
            code="unservable_lora_rank",
        )
    targets = hp.target_modules
    if isinstance(targets, list):
        bad = [t for t in targets if t.split(".")[-1] in _UNSERVABLE_TARGETS]
        if bad:
            raise InvalidRequest(
                f"target_modules {bad} cannot be served as LoRA adapters; target the attention and MLP linear layers.",
                param=f"{param}.target_modules",
                code="unservable_target_modules",
            )


def base_model_of(session: Session, project: Project, model: str, catalog: Catalog) -> tuple[str, str | None]:
    if catalog.get(model) is not None:
        return model, None
    if is_fine_tuned_name(model):
        row = models.usable(session, project, model)  # the project's own, or one shared with it
        if row is not None:
            return row.base_model, row.name
    raise InvalidRequest(
        f"Model {shown(model)} is not available for fine-tuning or does not exist.",
        param="model",
        code="model_not_available",
    )


def check_file(session: Session, project: Project, file_id: str | None, param: str) -> None:
    if file_id is None:
        return
    row = session.scalar(select(File).where(File.id == file_id, File.project_id == project.id))
    now = time.time()
    if row is None or (row.expires_at is not None and row.expires_at <= now):
        raise InvalidRequest(f"invalid {param}: {shown(file_id)}", param=param, code="invalid_file")
    if row.purpose != "fine-tune":
        raise InvalidRequest(
            f"invalid {param}: {file_id} has purpose {row.purpose!r}; upload it with purpose 'fine-tune'.",
            param=param,
            code="invalid_file_purpose",
        )


def create(
    session: Session, project: Project, params: FineTuningJobCreateParams, catalog: Catalog, accelerator: str = "cpu"
) -> Job:
    method, hp = _method(params)
    mtype = method.name
    base, init_adapter = base_model_of(session, project, params.model, catalog)
    entry = catalog.get(base)
    assert entry is not None
    if entry.runner == "pooling":
        raise InvalidRequest(
            f"Model {params.model} is an embedding model (served for /v1/embeddings); it cannot be fine-tuned.",
            param="model",
            code="model_not_available",
        )
    hp_param = f"method.{mtype}.hyperparameters" if params.method else "hyperparameters"
    _serving_gate(hp, entry, accelerator, hp_param)
    check_file(session, project, params.training_file, "training_file")
    check_file(session, project, params.validation_file, "validation_file")
    if params.suffix is not None and not SUFFIX.fullmatch(params.suffix):
        raise InvalidRequest("Invalid 'suffix': use up to 64 letters, digits, '.', '_' or '-'.", param="suffix")
    if params.integrations:
        raise InvalidRequest(
            "Integrations (Weights & Biases) are not available on this server: it has no route to external services.",
            param="integrations",
            code="unsupported_integration",
        )
    job = Job(
        id=ids.job_id(),
        project_id=project.id,
        project_name=project.name,
        model=params.model,
        base_model=base,
        init_adapter=init_adapter,
        training_file=params.training_file,
        validation_file=params.validation_file,
        method_type=mtype,
        hyperparameters=hp.model_dump(),
        suffix=params.suffix,
        seed=params.seed if params.seed is not None else secrets.randbelow(2**31),
        job_metadata=params.metadata,
        integrations=[],
        status=JobStatus.VALIDATING_FILES.value,
        planned_model=str(ModelName(base, project.name, params.suffix, ids.model_short_id())),
        result_files=[],
        created_at=int(time.time()),
    )
    session.add(job)
    session.flush()
    events.add(session, job.id, f"Created fine-tuning job: {job.id}")
    files = f"Validating training file: {job.training_file}"
    if job.validation_file:
        files += f" and validation file: {job.validation_file}"
    events.add(session, job.id, files)
    return job


def to_wire(job: Job) -> FineTuningJob:
    hp = job.hyperparameters
    return FineTuningJob(
        id=job.id,
        created_at=job.created_at,
        error=JobError(**job.error) if job.error else None,
        fine_tuned_model=job.fine_tuned_model,
        finished_at=job.finished_at,
        hyperparameters=Hyperparameters(**{k: hp[k] for k in Hyperparameters.model_fields}),
        model=job.model,
        organization_id=job.project_id,
        result_files=list(job.result_files),
        status=JobStatus(job.status),
        trained_tokens=job.trained_tokens,
        training_file=job.training_file,
        validation_file=job.validation_file,
        integrations=job.integrations,
        seed=job.seed,
        estimated_finish=job.estimated_finish if job.status == JobStatus.RUNNING else None,
        method={"type": job.method_type, job.method_type: {"hyperparameters": dict(hp)}},
        metadata=job.job_metadata,
        user_provided_suffix=job.suffix,
    )


def get(session: Session, project: Project, job_id: str, *, for_update: bool = False) -> Job:
    stmt = select(Job).where(Job.id == job_id, Job.project_id == project.id)
    if for_update:
        stmt = stmt.with_for_update()
    job = session.scalar(stmt)
    if job is None:
        raise job_not_found(job_id)
    return job


def list_jobs(
    session: Session, project: Project, *, after: str | None, limit: int | None, metadata: dict[str, str]
) -> tuple[list[Job], bool]:
    where: list[Any] = [Job.project_id == project.id]
    limit = check_limit(limit, 20, 100)
    if not metadata:
        return paginate(session, Job, where, after=after, limit=limit)
    # JSON filtering differs by database; filter the (bounded) scan in Python instead.
    out: list[Job] = []
    cursor = after
    while True:
        rows, more = paginate(session, Job, where, after=cursor, limit=200)
        for job in rows:
            if job.job_metadata and all(job.job_metadata.get(k) == v for k, v in metadata.items()):
                out.append(job)
                if len(out) > limit:
                    return out[:limit], True
        if not more:
            return out, False
        cursor = rows[-1].id


def _not_allowed(job: Job, action: str) -> InvalidRequest:
    return InvalidRequest(
        f"Cannot {action} job {job.id}: its status is '{job.status}'.",
        param="fine_tuning_job_id",
        code="invalid_job_status",
    )


def cancel(session: Session, project: Project, job_id: str) -> Job:
    job = get(session, project, job_id, for_update=True)
    if not states.can_move(job, JobStatus.CANCELLED):
        raise _not_allowed(job, "cancel")
    states.move(job, JobStatus.CANCELLED)
    job.finished_at = int(time.time())
    job.estimated_finish = None
    events.add(session, job.id, "The job was cancelled")
    return job


def pause(session: Session, project: Project, job_id: str) -> Job:
    job = get(session, project, job_id, for_update=True)
    if job.status == JobStatus.QUEUED:
        states.move(job, JobStatus.PAUSED)
        events.add(session, job.id, "Fine-tuning job paused")
    elif job.status == JobStatus.RUNNING:
        states.move(job, JobStatus.PAUSING)  # the trainer checkpoints and exits; the reconciler sets 'paused'
        events.add(session, job.id, "Pausing fine-tuning job: saving a checkpoint")
    elif job.status not in (JobStatus.PAUSING, JobStatus.PAUSED):
        raise _not_allowed(job, "pause")
    return job


def resume(session: Session, project: Project, job_id: str) -> Job:
    job = get(session, project, job_id, for_update=True)
    if job.status != JobStatus.PAUSED:
        raise _not_allowed(job, "resume")
    states.move(job, JobStatus.QUEUED)
    events.add(session, job.id, "Fine-tuning job resumed")
    return job


def list_events(
    session: Session, project: Project, job_id: str, *, after: str | None, limit: int | None
) -> tuple[list[JobEvent], bool]:
    job = get(session, project, job_id)
    return paginate(session, JobEvent, [JobEvent.job_id == job.id], after=after, limit=check_limit(limit, 20, 1000))


def list_checkpoints(
    session: Session, project: Project, job_id: str, *, after: str | None, limit: int | None
) -> tuple[list[Checkpoint], bool]:
    job = get(session, project, job_id)
    return paginate(session, Checkpoint, [Checkpoint.job_id == job.id], after=after, limit=check_limit(limit, 10, 100))


def checkpoint_to_wire(row: Checkpoint) -> FineTuningJobCheckpoint:
    return FineTuningJobCheckpoint(
        id=row.id,
        created_at=row.created_at,
        fine_tuned_model_checkpoint=row.model_name,
        fine_tuning_job_id=row.job_id,
        step_number=row.step_number,
        metrics=row.metrics,
    )
