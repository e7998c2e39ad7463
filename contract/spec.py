"""The contract between the control plane and a trainer attempt.

The service builds a ``JobSpec`` per attempt and hands it to a launcher; the trainer reads
it, trains, and reports back over the internal API with the per-attempt ``report_token``.
Every report carries a client-generated ``id`` so a retried report is recorded once. The
hyperparameters are the method's typed model (``contract.methods``), fully resolved.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SerializeAsAny, model_validator

from contract.hyperparameters import Hyperparameters
from contract.methods import METHODS, MethodSpec

# Trainer exit codes the launchers and the reconciler act on.
EXIT_BAD_INPUT = 65  # the job's data cannot be trained on: fail now, do not retry
EXIT_FATAL = 66  # a deterministic error (configuration, code): another attempt would fail the same way
EXIT_SUPERSEDED = 75  # the control plane no longer accepts this attempt's reports
EXIT_PREEMPTED = 76  # stopped by SIGTERM (node drain, eviction, Ctrl-C) after a checkpoint: resume, no failure
NO_RETRY_EXIT_CODES = (EXIT_BAD_INPUT, EXIT_FATAL)
# Exit codes a Kubernetes Job must end on at once (podFailurePolicy FailJob), so its condition
# carries the code for the reconciler to read; which of them are retried is the reconciler's call.
FAIL_JOB_EXIT_CODES = (*NO_RETRY_EXIT_CODES, EXIT_PREEMPTED)
ATTEMPT_EXIT_FILE = "exit-code"  # written by the trainer into $HONE_ATTEMPT_DIR, for a launcher that adopts it
MAX_MESSAGE_CHARS = 4096


class JobSpec(BaseModel):
    job_id: str
    attempt: int = Field(ge=1)
    project: str
    base_model: str  # catalog short name
    base_model_source: str  # local path or hub id of the base weights
    init_adapter_uri: str | None = None  # continued training from a fine-tuned model
    method: str
    hyperparameters: SerializeAsAny[Hyperparameters]  # the method's model, no "auto" left
    training_file_uri: str
    validation_file_uri: str | None = None
    storage_url: str  # the blob store holding every URI below
    output_uri: str  # blob prefix of the job's contract.layout.JobLayout
    fine_tuned_model: str  # the name the final adapter will be served under
    report_url: str  # .../internal/v1/jobs/{job_id}
    report_token: str
    seed: int
    resume_uri: str | None = None  # newest complete checkpoint, if any
    heartbeat_s: float = Field(default=60.0, gt=0)  # report at least this often, even inside a long step

    @model_validator(mode="before")
    @classmethod
    def _typed_hyperparameters(cls, data: Any) -> Any:
        if isinstance(data, dict) and "method" in data:
            model = METHODS.get(str(data["method"])).hyperparameters
            hp = data.get("hyperparameters")
            if not isinstance(hp, model):
                data = {
                    **data,
                    "hyperparameters": model.model_validate(
                        hp.model_dump() if isinstance(hp, Hyperparameters) else hp or {}
                    ),
                }
        return data

    @model_validator(mode="after")
    def _resolved(self) -> JobSpec:
        self.hyperparameters.require_resolved()
        return self

    @property
    def method_spec(self) -> MethodSpec:
        return METHODS.get(self.method)


Level = Literal["info", "warn", "error"]


class EventReport(BaseModel):
    id: str = Field(min_length=1, max_length=128)  # client-generated, idempotency key
    created_at: int | None = None
    level: Level = "info"
    message: str = Field(max_length=MAX_MESSAGE_CHARS)
    type: Literal["message", "metrics"] = "message"
    data: dict[str, Any] | None = None


class EventBatch(BaseModel):
    events: list[EventReport] = Field(max_length=1000)


class CheckpointReport(BaseModel):
    id: str = Field(min_length=1, max_length=128)
    step_number: int = Field(ge=0)
    metrics: dict[str, float] = Field(default_factory=dict)
    uri: str  # blob prefix holding the PEFT files and manifest.json


class ProgressReport(BaseModel):
    trained_tokens: int | None = Field(default=None, ge=0)
    estimated_finish: int | None = Field(default=None, ge=0)


class CompletionReport(BaseModel):
    adapter_uri: str
    trained_tokens: int = Field(ge=0)
    result_file_uri: str | None = None  # CSV written by the trainer into the blob store


class FailureReport(BaseModel):
    code: str = Field(default="training_failed", max_length=64)
    message: str = Field(max_length=MAX_MESSAGE_CHARS)


class ReportAck(BaseModel):
    """What the control plane wants the trainer to do next."""

    action: Literal["continue", "pause", "cancel"] = "continue"


class ResumePoint(BaseModel):
    """Where an attempt starting now resumes from: the job's newest complete checkpoint, which
    may be newer than its spec's ``resume_uri`` when its pod was replaced (an eviction on
    Kubernetes re-runs the same spec after the evicted pod checkpointed)."""

    resume_uri: str | None = None
