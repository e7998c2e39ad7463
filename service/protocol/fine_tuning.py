"""Fine-tuning wire types: the create request and the job, event and checkpoint objects."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, create_model

from contract.methods import DEFAULT_METHOD, METHODS, REFUSED
from service.protocol.common import Metadata, RequestModel


class JobStatus(StrEnum):
    """OpenAI's job statuses plus ``pausing``/``paused``; transitions in service/jobs/states.py."""

    VALIDATING_FILES = "validating_files"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


_Strict = RequestModel


def _method_request() -> type[BaseModel]:
    """OpenAI's ``method`` object with one ``{name: {hyperparameters}}`` field per registered
    method (contract.methods); ``type`` is checked against the registry by the service, so an
    unknown or refused method gets a message naming the ones this server runs."""
    fields: dict[str, Any] = {"type": (str, Field(min_length=1, max_length=64))}
    for method in METHODS:
        hyperparameters: Any = method.hyperparameters | None
        body = create_model(f"{method.name.title()}Method", __base__=_Strict, hyperparameters=(hyperparameters, None))
        fields[method.name] = (body | None, None)
    for refused in REFUSED:  # accepted in the shape (the SDK may send it), refused by the service
        fields.setdefault(refused, (dict[str, Any] | None, None))
    return create_model("Method", __base__=_Strict, **fields)


Method = _method_request()
LegacyHyperparameters = METHODS.get(DEFAULT_METHOD).hyperparameters


class WandbIntegration(RequestModel):
    project: str
    name: str | None = None
    entity: str | None = None
    tags: list[str] | None = None


class Integration(_Strict):
    type: Literal["wandb"]
    wandb: WandbIntegration


class FineTuningJobCreateParams(_Strict):
    model: str = Field(min_length=1)
    training_file: str = Field(min_length=1)
    validation_file: str | None = None
    hyperparameters: LegacyHyperparameters | None = None  # type: ignore[valid-type]
    method: Method | None = None  # type: ignore[valid-type]
    suffix: str | None = Field(default=None, min_length=1, max_length=64)
    seed: Annotated[int, Field(ge=0, le=2147483647)] | None = None
    metadata: Metadata | None = None
    integrations: list[Integration] | None = None


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class Hyperparameters(BaseModel):
    """The job object's top-level ``hyperparameters`` (OpenAI's three; the method's full set is
    under ``method.<type>.hyperparameters``)."""

    batch_size: Literal["auto"] | int | None = "auto"
    learning_rate_multiplier: Literal["auto"] | float | None = "auto"
    n_epochs: Literal["auto"] | int | None = "auto"


class FineTuningJob(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: JobError | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    hyperparameters: Hyperparameters
    model: str
    organization_id: str
    result_files: list[str] = Field(default_factory=list)
    status: JobStatus
    trained_tokens: int | None = None
    training_file: str
    validation_file: str | None = None
    integrations: list[dict[str, Any]] | None = None
    seed: int
    estimated_finish: int | None = None
    method: dict[str, Any]
    metadata: dict[str, str] | None = None
    user_provided_suffix: str | None = None


class FineTuningJobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"] = "message"
    data: dict[str, Any] | None = None


class CheckpointMetrics(BaseModel):
    step: float | None = None
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None


class FineTuningJobCheckpoint(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    step_number: int
    metrics: dict[str, float]
