"""Grader wire types (openai-python: ``openai.types.graders``), shared by the Evals API's
``testing_criteria`` and ``/v1/fine_tuning/alpha/graders``. Only pydantic here: what each
grader does with them lives in service.evals.graders."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.protocol.common import RequestModel

# A number a grader keeps: finite (Python's JSON parser takes NaN and Infinity, which JSON and
# PostgreSQL do not, and NaN compares false with everything: a range [NaN, 1] passed its check).
Finite = Annotated[float, Field(allow_inf_nan=False)]
# A sampling seed: vLLM takes a signed 64-bit one (and answers each call with a 400 otherwise, so
# a run with a seed of 10**30 errored every item instead of being refused once).
Seed = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


class InputText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["input_text"]
    text: str


class OutputText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["output_text"]
    text: str


class InputImage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["input_image"]
    image_url: str
    detail: str | None = None
    file_id: str | None = None


class InputAudio(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["input_audio"]
    input_audio: dict[str, Any]


ContentItem = Annotated[InputText | OutputText | InputImage | InputAudio, Field(discriminator="type")]
Content = str | ContentItem | list[ContentItem]


class EvalItem(BaseModel):
    """A message of a model grader's ``input`` or a run's ``input_messages`` template; its
    text may hold ``{{item.x}}`` / ``{{sample.output_text}}`` templates."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant", "system", "developer"]
    content: Content
    type: Literal["message"] | None = None


class _Grader(RequestModel):
    name: str


class StringCheckGrader(_Grader):
    type: Literal["string_check"]
    input: str
    reference: str
    operation: Literal["eq", "ne", "like", "ilike"]


TextSimilarityMetric = Literal[
    "cosine", "fuzzy_match", "bleu", "gleu", "meteor", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l"
]


class TextSimilarityGrader(_Grader):
    type: Literal["text_similarity"]
    input: str
    reference: str
    evaluation_metric: TextSimilarityMetric
    pass_threshold: Finite | None = None  # required in testing_criteria (checked there), absent in graders/run


class PythonGrader(_Grader):
    type: Literal["python"]
    source: str
    image_tag: str | None = None
    pass_threshold: Finite | None = None


class ScoreModelSamplingParams(RequestModel):
    seed: Seed | None = None
    top_p: Finite | None = None
    temperature: Finite | None = None
    max_completions_tokens: int | None = Field(default=None, ge=1)
    reasoning_effort: str | None = None


class ScoreModelGrader(_Grader):
    type: Literal["score_model"]
    model: str
    input: list[EvalItem]
    range: list[Finite] | None = None
    sampling_params: ScoreModelSamplingParams | None = None
    pass_threshold: Finite | None = None


class LabelModelGrader(_Grader):
    type: Literal["label_model"]
    model: str
    input: list[EvalItem]
    labels: list[str]
    passing_labels: list[str]


# What an eval's testing_criteria and a multi grader's graders hold (the spec leaves multi out).
TestingCriterion = Annotated[
    StringCheckGrader | TextSimilarityGrader | PythonGrader | ScoreModelGrader | LabelModelGrader,
    Field(discriminator="type"),
]


class MultiGrader(_Grader):
    type: Literal["multi"]
    graders: dict[str, TestingCriterion] | TestingCriterion  # the SDK sends one grader or a name -> grader map
    calculate_output: str


# What graders/run and graders/validate take: the spec's RunGraderRequest.grader (label_model only
# inside a multi grader, whose formula turns its pass/fail into a score).
GraderSpec = Annotated[
    StringCheckGrader | TextSimilarityGrader | PythonGrader | ScoreModelGrader | MultiGrader,
    Field(discriminator="type"),
]


class RunGraderParams(RequestModel):
    grader: GraderSpec
    model_sample: str
    item: dict[str, Any] | None = None


class ValidateGraderParams(RequestModel):
    grader: GraderSpec


class ValidateGraderResponse(BaseModel):
    grader: dict[str, Any]


class RunGraderErrors(BaseModel):
    formula_parse_error: bool = False
    sample_parse_error: bool = False
    truncated_observation_error: bool = False
    unresponsive_reward_error: bool = False
    invalid_variable_error: bool = False
    other_error: bool = False
    python_grader_server_error: bool = False
    python_grader_server_error_type: str | None = None
    python_grader_runtime_error: bool = False
    python_grader_runtime_error_details: str | None = None
    model_grader_server_error: bool = False
    model_grader_refusal_error: bool = False
    model_grader_parse_error: bool = False
    model_grader_server_error_details: str | None = None
    details: str | None = None  # hone's extra field: the error's message, whichever flag is set


class RunGraderMetadata(BaseModel):
    name: str
    type: str
    errors: RunGraderErrors
    execution_time: float
    scores: dict[str, Any]
    token_usage: int | None
    sampled_model_name: str | None


class RunGraderResponse(BaseModel):
    reward: float
    metadata: RunGraderMetadata
    sub_rewards: dict[str, Any]
    model_grader_token_usage_per_model: dict[str, Any]
