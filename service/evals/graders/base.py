"""What every grader is: a wire type (service.protocol.graders), a creation-time check, and an
async ``grade`` of one (item, sample) pair. Graders are looked up by ``type`` in
service.evals.graders.registry; nothing outside this package branches on a grader's type.

A grader never raises for a bad item or a bad sample: it returns a ``GradeResult`` whose
``error`` says what went wrong (an ``errored`` output item, a ``RunGraderResponse`` with the
matching ``metadata.errors`` flag). It raises ``service.errors.InvalidRequest`` only from
``check``, for what can be known before any item is seen (a malformed template, a reference to
a field the item schema does not have, an unknown metric, a formula that does not parse)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from service.evals.config import EvalSettings, PythonGraderSettings

# The flags of RunGraderResponse.metadata.errors (all False unless set).
ErrorFlag = Literal[
    "formula_parse_error",
    "sample_parse_error",
    "truncated_observation_error",
    "unresponsive_reward_error",
    "invalid_variable_error",
    "other_error",
    "python_grader_server_error",
    "python_grader_runtime_error",
    "model_grader_server_error",
    "model_grader_refusal_error",
    "model_grader_parse_error",
]


@dataclass(frozen=True)
class GradeError:
    """Why an item could not be graded: the flag RunGraderResponse reports and a message an
    output item shows (``sample.error`` / the result's ``error``)."""

    flag: ErrorFlag
    message: str


@dataclass(frozen=True)
class Usage:
    """Tokens one judge call used, for ``per_model_usage``."""

    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True)
class JudgeReply:
    text: str
    finish_reason: str | None
    usage: Usage


@dataclass(frozen=True)
class Embeddings:
    """One embedding per text sent, in order, and the tokens the call used."""

    vectors: list[list[float]]
    usage: Usage


class ModelCallError(Exception):
    """A model could not answer: ``status`` is the HTTP status the gateway would have sent
    (404 unknown model, 400 a request vLLM refused, 503 no upstream), ``message`` its text."""

    def __init__(self, message: str, status: int, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


class Judge(Protocol):
    """Calls a model for label_model / score_model graders (``complete``) and embeds texts for
    text_similarity's cosine metric (``embed``): in the service, hone's own gateway within the
    caller's project (any base or fine-tuned model the project may use; an embedding model is
    a catalog base model served with ``runner: pooling``)."""

    async def complete(
        self,
        model: str,
        messages: list[dict[str, Any]],
        sampling: Mapping[str, Any],
        response_format: dict[str, Any] | None,
    ) -> JudgeReply: ...

    async def embed(self, model: str, texts: list[str]) -> Embeddings: ...


@dataclass(frozen=True)
class Namespaces:
    """What templates read: ``{{item.x}}`` and ``{{sample.output_text}}`` /
    ``{{sample.output_json.x}}``. ``sample`` is None when the data source has none."""

    item: Mapping[str, Any]
    sample: Mapping[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"item": self.item, "sample": self.sample}


@dataclass
class GradeResult:
    """One grader's verdict on one item. ``score`` is the reward (0 when errored); ``passed``
    applies the grader's own pass rule (string_check: score 1; text_similarity, score_model,
    python: ``pass_threshold``; label_model: the label is one of ``passing_labels``).
    ``sample``: what a model grader sent and got (shown in the output item's result)."""

    name: str
    type: str
    score: float
    passed: bool
    error: GradeError | None = None
    sample: dict[str, Any] | None = None
    usage: list[Usage] = field(default_factory=list)
    sub_rewards: dict[str, float] = field(default_factory=dict)  # multi: each inner grader's score


@dataclass(frozen=True)
class SchemaHints:
    """What creation-time checks know about the namespaces: the item's JSON schema (None: a
    grader run without one, where nothing is known) and whether samples exist."""

    item_schema: Mapping[str, Any] | None
    has_sample: bool


@dataclass(frozen=True)
class GraderOptions:
    """Operator settings graders read (``Settings.evals``)."""

    python: PythonGraderSettings = field(default_factory=PythonGraderSettings)
    embedding_model: str | None = None

    @classmethod
    def of(cls, settings: EvalSettings) -> GraderOptions:
        return cls(python=settings.python_grader, embedding_model=settings.embedding_model)


class Grader(Protocol):
    type: str
    wire: builtins.type[BaseModel]  # the grader's pydantic type in service.protocol.graders

    def check(self, spec: Any, hints: SchemaHints, options: GraderOptions, param: str) -> None:
        """Raise InvalidRequest (``param``: where the grader sits, e.g.
        ``testing_criteria[0]``) for anything knowable before grading."""
        ...

    async def grade(self, spec: Any, ns: Namespaces, judge: Judge | None, options: GraderOptions) -> GradeResult: ...
