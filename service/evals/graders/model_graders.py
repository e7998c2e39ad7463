"""``label_model`` and ``score_model``: a judge model, called through hone's own gateway within
the caller's project (any base or fine-tuned model it may use), reads the grader's ``input``
messages with their templates filled and answers with structured output (a JSON schema vLLM
enforces while decoding): ``{"result": "<one of labels>"}`` or ``{"result": <number>}``.

An answer that is not that JSON (a judge cut off by its token limit, a model that ignored the
schema), a label outside ``labels`` or a score outside ``range`` is the item's
``model_grader_parse_error``, quoting what the judge said; a judge that could not be called at
all is a ``model_grader_server_error``. Either way the item is errored, never the run."""

from __future__ import annotations

import builtins
import json
import re
from typing import Any

from pydantic import BaseModel

from service.errors import InvalidRequest, shown
from service.evals.graders.base import (
    ErrorFlag,
    GradeError,
    GradeResult,
    GraderOptions,
    Judge,
    JudgeReply,
    ModelCallError,
    Namespaces,
    SchemaHints,
    Usage,
)
from service.evals.graders.template import check_messages, render_messages
from service.protocol.graders import LabelModelGrader, ScoreModelGrader, ScoreModelSamplingParams

DEFAULT_RANGE = (0.0, 1.0)
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class ParseError(Exception):
    pass


def response_format(result: dict[str, Any]) -> dict[str, Any]:
    """The structured-output request for an object with one ``result`` field of schema ``result``."""
    schema = {
        "type": "object",
        "properties": {"result": result},
        "required": ["result"],
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": "result", "strict": True, "schema": schema}}


def parse_result(reply: JudgeReply) -> Any:
    """The ``result`` of the judge's JSON answer (the first ``{...}`` in it when the model wrapped
    the object in prose or a code fence). Raises ParseError quoting the answer."""
    text = reply.text.strip()
    doc: Any = None
    for candidate in (text, *(m.group(0) for m in [_OBJECT.search(text)] if m)):
        try:
            doc = json.loads(candidate)
            break
        except ValueError:
            continue
    if not isinstance(doc, dict) or "result" not in doc:
        cut = " (the judge stopped at its token limit)" if reply.finish_reason == "length" else ""
        raise ParseError(f'expected a JSON object {{"result": ...}}, but the judge answered {shown(text, 200)!r}{cut}')
    return doc["result"]


def sampling(params: ScoreModelSamplingParams | None) -> dict[str, Any]:
    """Chat-completion parameters of a score_model's ``sampling_params`` (``reasoning_effort``
    has no meaning for the models vLLM serves and is not sent)."""
    if params is None:
        return {}
    mapped = {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "seed": params.seed,
        "max_tokens": params.max_completions_tokens,
    }
    return {k: v for k, v in mapped.items() if v is not None}


def _errored(
    name: str,
    type_: str,
    flag: ErrorFlag,
    message: str,
    sample: dict[str, Any] | None = None,
    usage: list[Usage] | None = None,
) -> GradeResult:
    error = GradeError(flag, message)
    return GradeResult(name, type_, 0.0, False, error=error, sample=sample, usage=usage or [])


def _exchange(model: str, messages: list[dict[str, Any]], reply: JudgeReply) -> dict[str, Any]:
    """What the output item shows of the judge call: what it was sent and what it said."""
    u = reply.usage
    return {
        "model": model,
        "input": messages,
        "output": [{"role": "assistant", "content": reply.text}],
        "finish_reason": reply.finish_reason,
        "usage": {
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens,
            "cached_tokens": u.cached_tokens,
        },
    }


async def _ask(
    spec: LabelModelGrader | ScoreModelGrader,
    ns: Namespaces,
    judge: Judge | None,
    params: dict[str, Any],
    result_schema: dict[str, Any],
) -> tuple[list[dict[str, Any]], JudgeReply] | GradeResult:
    """The judge's reply, or the errored result when it could not be called."""
    messages = render_messages(spec.input, ns)
    if judge is None:
        return _errored(spec.name, spec.type, "model_grader_server_error", "No judge model is available here.")
    try:
        reply = await judge.complete(spec.model, messages, params, response_format(result_schema))
    except ModelCallError as e:
        message = f"The judge model {shown(spec.model, 64)!r} could not answer (HTTP {e.status}): {e.message}"
        return _errored(spec.name, spec.type, "model_grader_server_error", message)
    return messages, reply


class LabelModel:
    type = "label_model"
    wire: builtins.type[BaseModel] = LabelModelGrader

    def check(self, spec: LabelModelGrader, hints: SchemaHints, options: GraderOptions, param: str) -> None:
        if not spec.labels:
            raise InvalidRequest(f"Invalid '{param}.labels': give at least one label.", param=f"{param}.labels")
        labels = set(spec.labels)  # a set: 10,000 labels checked against a list took seconds
        unknown = [label for label in spec.passing_labels if label not in labels]
        if unknown:
            raise InvalidRequest(
                f"Invalid '{param}.passing_labels': {shown(unknown[0], 64)!r} is not one of the labels "
                f"({shown(', '.join(spec.labels))}); passing_labels must be a subset of labels.",
                param=f"{param}.passing_labels",
            )
        _check_model_input(spec, hints, param)

    async def grade(
        self, spec: LabelModelGrader, ns: Namespaces, judge: Judge | None, options: GraderOptions
    ) -> GradeResult:
        asked = await _ask(spec, ns, judge, {}, {"type": "string", "enum": list(dict.fromkeys(spec.labels))})
        if isinstance(asked, GradeResult):
            return asked
        messages, reply = asked
        sample = _exchange(spec.model, messages, reply)
        try:
            label = parse_result(reply)
            if not isinstance(label, str) or label not in spec.labels:
                raise ParseError(f"the judge answered {shown(json.dumps(label), 128)}, which is not one of the labels")
        except ParseError as e:
            return _errored(spec.name, self.type, "model_grader_parse_error", str(e), sample, [reply.usage])
        ok = label in spec.passing_labels
        return GradeResult(spec.name, self.type, 1.0 if ok else 0.0, ok, sample=sample, usage=[reply.usage])


class ScoreModel:
    type = "score_model"
    wire: builtins.type[BaseModel] = ScoreModelGrader

    def check(self, spec: ScoreModelGrader, hints: SchemaHints, options: GraderOptions, param: str) -> None:
        if spec.range is not None and (len(spec.range) != 2 or spec.range[0] >= spec.range[1]):
            raise InvalidRequest(
                f"Invalid '{param}.range': expected [min, max] with min < max, but got {spec.range}.",
                param=f"{param}.range",
            )
        p = spec.sampling_params
        if p is not None and p.temperature is not None and not 0 <= p.temperature <= 2:
            raise InvalidRequest(
                f"Invalid '{param}.sampling_params.temperature': expected a number from 0 to 2.",
                param=f"{param}.sampling_params.temperature",
            )
        if p is not None and p.top_p is not None and not 0 < p.top_p <= 1:
            raise InvalidRequest(
                f"Invalid '{param}.sampling_params.top_p': expected a number above 0 and at most 1.",
                param=f"{param}.sampling_params.top_p",
            )
        _check_model_input(spec, hints, param)

    async def grade(
        self, spec: ScoreModelGrader, ns: Namespaces, judge: Judge | None, options: GraderOptions
    ) -> GradeResult:
        low, high = spec.range if spec.range else DEFAULT_RANGE
        asked = await _ask(spec, ns, judge, sampling(spec.sampling_params), {"type": "number"})
        if isinstance(asked, GradeResult):
            return asked
        messages, reply = asked
        sample = _exchange(spec.model, messages, reply)
        try:
            score = parse_result(reply)
            if isinstance(score, bool) or not isinstance(score, int | float):
                raise ParseError(f"the judge answered {shown(json.dumps(score), 128)}, which is not a number")
            if not low <= score <= high:
                raise ParseError(f"the judge's score {score} is outside the range [{low:g}, {high:g}]")
        except ParseError as e:
            return _errored(spec.name, self.type, "model_grader_parse_error", str(e), sample, [reply.usage])
        threshold = high if spec.pass_threshold is None else spec.pass_threshold
        return GradeResult(spec.name, self.type, float(score), score >= threshold, sample=sample, usage=[reply.usage])


def _check_model_input(spec: LabelModelGrader | ScoreModelGrader, hints: SchemaHints, param: str) -> None:
    if not spec.model.strip():
        raise InvalidRequest(f"Invalid '{param}.model': name the judge model.", param=f"{param}.model")
    if not spec.input:
        raise InvalidRequest(f"Invalid '{param}.input': give at least one message.", param=f"{param}.input")
    check_messages(spec.input, hints, f"{param}.input")
