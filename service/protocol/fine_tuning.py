"""Fine-tuning wire types: the create request and the job, event and checkpoint objects."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

Auto = Literal["auto"]
BatchSize = Union[Auto, Annotated[StrictInt, Field(ge=1, le=256)]]
LearningRateMultiplier = Union[Auto, Annotated[Union[StrictInt, StrictFloat], Field(gt=0)]]
NEpochs = Union[Auto, Annotated[StrictInt, Field(ge=1, le=50)]]
Beta = Union[Auto, Annotated[Union[StrictInt, StrictFloat], Field(gt=0, le=2)]]

JobStatus = Literal["validating_files", "queued", "running", "pausing", "paused",
                    "succeeded", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SupervisedHyperparameters(_Strict):
    batch_size: BatchSize = "auto"
    learning_rate_multiplier: LearningRateMultiplier = "auto"
    n_epochs: NEpochs = "auto"
    # hone extensions (not in OpenAI's API); defaults in service/jobs/hyperparameters.py.
    training_type: Literal["lora", "qlora", "full"] | None = None
    lora_rank: Annotated[StrictInt, Field(ge=1, le=1024)] | None = None
    lora_alpha: Annotated[Union[StrictInt, StrictFloat], Field(gt=0)] | None = None
    lora_dropout: Annotated[Union[StrictInt, StrictFloat], Field(ge=0, lt=1)] | None = None
    target_modules: Union[Literal["all-linear"], Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.]{1,64}$")]], Field(min_length=1, max_length=64)]] | None = None
    checkpoint_interval: Union[Literal["epoch"], Annotated[StrictInt, Field(ge=1)]] | None = None


class DpoHyperparameters(SupervisedHyperparameters):
    beta: Beta = "auto"


class SupervisedMethod(_Strict):
    hyperparameters: SupervisedHyperparameters | None = None


class DpoMethod(_Strict):
    hyperparameters: DpoHyperparameters | None = None


class Method(_Strict):
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: SupervisedMethod | None = None
    dpo: DpoMethod | None = None
    # Accepted in the request shape (the SDK may send it), refused by the service.
    reinforcement: dict[str, Any] | None = None


class WandbIntegration(BaseModel):
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
    hyperparameters: SupervisedHyperparameters | None = None
    method: Method | None = None
    suffix: str | None = Field(default=None, min_length=1, max_length=64)
    seed: Annotated[StrictInt, Field(ge=0, le=2147483647)] | None = None
    metadata: dict[str, str] | None = None
    integrations: list[Integration] | None = None


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class Hyperparameters(BaseModel):
    batch_size: Auto | int | None = "auto"
    learning_rate_multiplier: Auto | float | None = "auto"
    n_epochs: Auto | int | None = "auto"


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
