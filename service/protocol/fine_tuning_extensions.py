"""Wire types of hone's fine-tuning extensions (not in OpenAI's API; docs/architecture.md,
"hone's API extensions"): the dataset check and the methods listing."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from service.protocol.common import RequestModel


class DatasetCheckMethod(RequestModel):
    type: str = Field(min_length=1, max_length=64)


class DatasetCheckParams(RequestModel):
    training_file: str = Field(min_length=1)
    model: str = Field(min_length=1)
    method: DatasetCheckMethod | None = None  # as a job's: supervised when left out


class DatasetProblem(BaseModel):
    """One problem, as the job's ``error`` would carry it, plus its 1-based line (null for a
    file-level problem such as too few examples)."""

    line: int | None
    where: str | None  # inside the line, e.g. "message 2"; null when about the whole line
    param: str
    code: str
    message: str


class DatasetCheck(BaseModel):
    object: Literal["fine_tuning.dataset_check"] = "fine_tuning.dataset_check"
    file_id: str
    model: str
    method: str
    valid: bool
    n_examples: int
    n_tokens: int
    max_example_tokens: int
    max_tokens: int  # the base model's limit per example
    min_examples: int
    errors: list[DatasetProblem]  # the first ones by line order
    truncated: bool  # the check stopped at its error limit: there may be more, counts are partial
    auto_hyperparameters: dict[str, Any]  # what every "auto" would resolve to for n_examples


class HyperparameterInfo(BaseModel):
    name: str
    default: Any
    values: str
    description: str
    auto: str | None  # how "auto" resolves; null when the field takes no "auto"
    json_schema: dict[str, Any]


class MethodInfo(BaseModel):
    object: Literal["fine_tuning.method"] = "fine_tuning.method"
    name: str
    summary: str
    data_format: str
    default: bool
    hyperparameters: list[HyperparameterInfo]


class MethodList(BaseModel):
    object: Literal["list"] = "list"
    data: list[MethodInfo]
    refused: dict[str, str]  # OpenAI methods this server knows but does not run, with the reason
