"""Evals API wire types (openai-python: ``openai.types.eval_*`` and ``openai.types.evals``).

Request bodies are RequestModels (unknown fields refused, no coercion). The data source
configs and run data sources OpenAI defines but hone cannot serve (``logs`` and
``stored_completions`` configs, ``stored_completions`` sources, ``responses`` runs) are
parsed too, so that service.evals refuses them by name with the reason instead of pydantic
calling them unknown values."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from service.protocol.common import Metadata, RequestModel
from service.protocol.graders import EvalItem, Seed, TestingCriterion

MAX_NAME_CHARS = 512  # the name columns' size

Name = Annotated[str, Field(max_length=MAX_NAME_CHARS)]
RunStatus = Literal["queued", "in_progress", "completed", "canceled", "failed"]
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
UNFINISHED_RUN_STATUSES: tuple[RunStatus, ...] = ("queued", "in_progress")  # a runner may claim it, a caller cancel it
FINISHED_RUN_STATUSES: tuple[RunStatus, ...] = ("completed", "canceled", "failed")
OutputItemStatus = Literal["pass", "fail"]
Order = Literal["asc", "desc"]

# --------------------------------------------------------------------------- data source configs


class CustomDataSourceConfigParams(RequestModel):
    type: Literal["custom"]
    item_schema: dict[str, Any]
    include_sample_schema: bool = False


class _OpenAISideConfig(BaseModel):
    """A config that reads OpenAI's stored logs; accepted by the parser only to be refused."""

    model_config = ConfigDict(extra="allow")


class LogsDataSourceConfigParams(_OpenAISideConfig):
    type: Literal["logs"]


class StoredCompletionsDataSourceConfigParams(_OpenAISideConfig):
    type: Literal["stored_completions"]


DataSourceConfigParams = Annotated[
    CustomDataSourceConfigParams | LogsDataSourceConfigParams | StoredCompletionsDataSourceConfigParams,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- evals


class EvalCreateParams(RequestModel):
    name: Name | None = None
    metadata: Metadata | None = None
    data_source_config: DataSourceConfigParams
    testing_criteria: list[TestingCriterion]


class EvalUpdateParams(RequestModel):
    name: Name | None = None
    metadata: Metadata | None = None


class Eval(BaseModel):
    """``data_source_config`` and ``testing_criteria`` are the stored wire shapes (the config
    expanded to its ``schema``; each criterion with its ``id``)."""

    object: Literal["eval"] = "eval"
    id: str
    name: str
    data_source_config: dict[str, Any]
    testing_criteria: list[dict[str, Any]]
    created_at: int
    metadata: dict[str, str]


class EvalDeleted(BaseModel):
    object: Literal["eval.deleted"] = "eval.deleted"
    deleted: bool = True
    eval_id: str


# --------------------------------------------------------------------------- run data sources


class FileContentRow(RequestModel):
    item: dict[str, Any]
    sample: dict[str, Any] | None = None


class FileContentSource(RequestModel):
    type: Literal["file_content"]
    content: list[FileContentRow]


class FileIdSource(RequestModel):
    type: Literal["file_id"]
    id: str


class StoredCompletionsSource(_OpenAISideConfig):
    type: Literal["stored_completions"]


JsonlSource = Annotated[FileContentSource | FileIdSource, Field(discriminator="type")]
CompletionsSource = Annotated[FileContentSource | FileIdSource | StoredCompletionsSource, Field(discriminator="type")]


class JsonlDataSource(RequestModel):
    type: Literal["jsonl"]
    source: JsonlSource


class TemplateInputMessages(RequestModel):
    type: Literal["template"]
    template: list[EvalItem]


class ItemReferenceInputMessages(RequestModel):
    type: Literal["item_reference"]
    item_reference: str


InputMessages = Annotated[TemplateInputMessages | ItemReferenceInputMessages, Field(discriminator="type")]


class CompletionsSamplingParams(RequestModel):
    """The spec's sampling parameters, each one vLLM's chat completions takes as it is."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: Seed | None = None
    max_completion_tokens: int | None = Field(default=None, ge=1)
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None


class CompletionsDataSource(RequestModel):
    type: Literal["completions"]
    source: CompletionsSource
    model: str | None = None
    input_messages: InputMessages | None = None
    sampling_params: CompletionsSamplingParams | None = None


class ResponsesDataSource(_OpenAISideConfig):
    """Parsed only to be refused (hone samples through chat completions)."""

    type: Literal["responses"]


RunDataSource = Annotated[JsonlDataSource | CompletionsDataSource | ResponsesDataSource, Field(discriminator="type")]


# --------------------------------------------------------------------------- runs


class EvalRunCreateParams(RequestModel):
    name: Name | None = None
    metadata: Metadata | None = None
    data_source: RunDataSource


class ResultCounts(BaseModel):
    total: int = 0
    errored: int = 0
    failed: int = 0
    passed: int = 0


class EvalApiError(BaseModel):
    code: str
    message: str


class EvalRun(BaseModel):
    object: Literal["eval.run"] = "eval.run"
    id: str
    eval_id: str
    status: RunStatus
    model: str
    name: str
    created_at: int
    report_url: str
    result_counts: ResultCounts
    per_model_usage: list[dict[str, Any]]
    per_testing_criteria_results: list[dict[str, Any]]
    data_source: dict[str, Any]
    metadata: dict[str, str]
    error: EvalApiError | None = None


class EvalRunDeleted(BaseModel):
    object: Literal["eval.run.deleted"] = "eval.run.deleted"
    deleted: bool = True
    run_id: str


# --------------------------------------------------------------------------- output items


class EvalRunOutputItem(BaseModel):
    object: Literal["eval.run.output_item"] = "eval.run.output_item"
    id: str
    run_id: str
    eval_id: str
    created_at: int
    status: str
    datasource_item_id: int
    datasource_item: dict[str, Any]
    results: list[dict[str, Any]]
    sample: dict[str, Any]
