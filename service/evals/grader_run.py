"""/v1/fine_tuning/alpha/graders/run and /validate: the same registry checks and grades an
eval's testing criteria go through, on one (item, model_sample) pair sent in the request."""

from __future__ import annotations

import time
from typing import Any

from service.evals import data_config
from service.evals.graders import registry
from service.evals.graders.base import GradeResult, GraderOptions, Judge, Namespaces, SchemaHints, Usage
from service.evals.graders.template import sample_namespace
from service.protocol.graders import (
    RunGraderErrors,
    RunGraderMetadata,
    RunGraderParams,
    RunGraderResponse,
    ValidateGraderParams,
    ValidateGraderResponse,
)

# A grader run alone knows nothing of the item's shape; a model sample is always there.
HINTS = SchemaHints(item_schema=None, has_sample=True)
# flags whose own details field the response has (any flag's message is also in ``details``)
_DETAILS = {
    "model_grader_server_error": "model_grader_server_error_details",
    "python_grader_runtime_error": "python_grader_runtime_error_details",
    "python_grader_server_error": "python_grader_server_error_type",
}


def validate(params: ValidateGraderParams, options: GraderOptions) -> ValidateGraderResponse:
    registry.check(params.grader, HINTS, options, "grader")
    return ValidateGraderResponse(grader=params.grader.model_dump(exclude_none=True))


async def run(params: RunGraderParams, judge: Judge | None, options: GraderOptions) -> RunGraderResponse:
    registry.check(params.grader, HINTS, options, "grader")
    data_config.refuse_bad_json(params.item, "item")  # the response echoes what graders read of it
    ns = Namespaces(item=params.item or {}, sample=sample_namespace(params.model_sample))
    started = time.perf_counter()
    result = await registry.grade(params.grader, ns, judge, options)
    return response(result, time.perf_counter() - started)


def response(r: GradeResult, execution_time: float) -> RunGraderResponse:
    errors = RunGraderErrors()
    if r.error is not None:
        setattr(errors, r.error.flag, True)
        errors.details = r.error.message
        if r.error.flag in _DETAILS:
            setattr(errors, _DETAILS[r.error.flag], r.error.message)
    per_model = usage_per_model(r.usage)
    metadata = RunGraderMetadata(
        name=r.name,
        type=r.type,
        errors=errors,
        execution_time=execution_time,
        scores=dict(r.sub_rewards),
        token_usage=sum(u["total_tokens"] for u in per_model.values()) if per_model else None,
        sampled_model_name=r.usage[0].model if r.usage else None,
    )
    return RunGraderResponse(
        reward=r.score, metadata=metadata, sub_rewards=dict(r.sub_rewards), model_grader_token_usage_per_model=per_model
    )


def usage_per_model(usage: list[Usage]) -> dict[str, Any]:
    """Judge tokens summed by model: {model: {prompt_tokens, completion_tokens, total_tokens, cached_tokens}}."""
    out: dict[str, dict[str, int]] = {}
    for u in usage:
        row = out.setdefault(
            u.model, {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cached_tokens": 0}
        )
        row["prompt_tokens"] += u.prompt_tokens
        row["completion_tokens"] += u.completion_tokens
        row["total_tokens"] += u.prompt_tokens + u.completion_tokens
        row["cached_tokens"] += u.cached_tokens
    return dict(out)
