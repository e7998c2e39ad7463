"""The contract between the control plane and a trainer attempt (pydantic only).

The service builds a ``JobSpec`` per attempt and hands it to a launcher; the trainer reads
it, trains, and reports back over the internal API with the per-attempt ``report_token``.
Every report carries a client-generated ``id`` so a retried report is recorded once.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

Method = Literal["supervised", "dpo"]

# Fine-tuned model names (DESIGN.md §3): ft:{base}:{project}:{suffix}:{8 alnum}[:ckpt-step-{n}].
# The one grammar the control plane mints and the inference resolver accepts; nothing else.
FINE_TUNED_MODEL_NAME = re.compile(
    r"^ft:(?P<base>[A-Za-z0-9][A-Za-z0-9._\-]{0,127}):(?P<project>[a-z0-9][a-z0-9\-_]{0,62}):"
    r"(?P<suffix>[A-Za-z0-9._\-]{0,64}):(?P<short>[A-Za-z0-9]{8})(?::ckpt-step-(?P<step>\d{1,10}))?$")

# Trainer exit codes the launchers and the reconciler act on.
EXIT_BAD_INPUT = 65  # the job's data cannot be trained on: fail now, do not retry
EXIT_SUPERSEDED = 75  # the control plane no longer accepts this attempt's reports


class JobSpec(BaseModel):
    job_id: str
    attempt: int = Field(ge=1)
    project: str
    base_model: str  # catalog short name
    base_model_source: str  # local path or hub id of the base weights
    init_adapter_uri: str | None = None  # continued training from a fine-tuned model
    method: Method
    hyperparameters: dict[str, Any]  # resolved: no "auto" left
    training_file_uri: str
    validation_file_uri: str | None = None
    storage_url: str  # the blob store holding every URI below
    output_uri: str  # blob prefix: {output_uri}/checkpoints/step-{n}/, {output_uri}/final/
    fine_tuned_model: str  # the name the final adapter will be served under
    report_url: str  # .../internal/v1/jobs/{job_id}
    report_token: str
    seed: int
    resume_uri: str | None = None  # newest complete checkpoint, if any


Level = Literal["info", "warn", "error"]


class EventReport(BaseModel):
    id: str = Field(min_length=1, max_length=128)  # client-generated, idempotency key
    created_at: int | None = None
    level: Level = "info"
    message: str
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
    trained_tokens: int | None = None
    estimated_finish: int | None = None
    hyperparameters: dict[str, Any] | None = None


class CompletionReport(BaseModel):
    adapter_uri: str
    trained_tokens: int
    result_file_uri: str | None = None  # CSV written by the trainer into the blob store


class FailureReport(BaseModel):
    code: str = "training_failed"
    message: str


class ReportAck(BaseModel):
    """What the control plane wants the trainer to do next."""

    action: Literal["continue", "pause", "cancel"] = "continue"
