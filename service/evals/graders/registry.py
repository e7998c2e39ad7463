"""Graders by ``type``: the one place that maps a grader's wire type to its code. Evals
(testing_criteria), runs and /v1/fine_tuning/alpha/graders all go through ``check`` and
``grade`` here."""

from __future__ import annotations

import logging
from typing import Any

from service.errors import InvalidRequest
from service.evals.graders.base import GradeError, Grader, GradeResult, GraderOptions, Judge, Namespaces, SchemaHints
from service.evals.graders.model_graders import LabelModel, ScoreModel
from service.evals.graders.multi import Multi
from service.evals.graders.python import Python
from service.evals.graders.string_check import StringCheck
from service.evals.graders.template import TemplateError
from service.evals.graders.text_similarity import TextSimilarity

log = logging.getLogger(__name__)

GRADERS: dict[str, Grader] = {
    g.type: g for g in (StringCheck(), TextSimilarity(), LabelModel(), ScoreModel(), Python(), Multi())
}


def check(
    spec: Any, hints: SchemaHints, options: GraderOptions, param: str, require_pass_threshold: bool = False
) -> None:
    """Raise InvalidRequest (naming ``param`` and the field below it) for anything knowable
    before grading. ``require_pass_threshold``: an eval's testing_criteria, where OpenAI
    requires text_similarity's ``pass_threshold``."""
    grader = GRADERS[spec.type]
    if require_pass_threshold and getattr(grader, "threshold_required", False) and spec.pass_threshold is None:
        raise InvalidRequest(f"Missing required parameter: '{param}.pass_threshold'.", param=f"{param}.pass_threshold")
    grader.check(spec, hints, options, param)


async def grade(spec: Any, ns: Namespaces, judge: Judge | None, options: GraderOptions) -> GradeResult:
    """One grader's result on one item; never raises for what the item or the judge did."""
    try:
        return await GRADERS[spec.type].grade(spec, ns, judge, options)
    except TemplateError as e:
        return GradeResult(spec.name, spec.type, 0.0, False, error=GradeError("invalid_variable_error", e.message))
    except Exception as e:  # a metric library's surprise must cost one item, not the run
        log.exception("grader %r (%s) failed", spec.name, spec.type)
        message = f"The grader failed: {type(e).__name__}: {e}"
        return GradeResult(spec.name, spec.type, 0.0, False, error=GradeError("other_error", message))


def result_to_wire(r: GradeResult) -> dict[str, Any]:
    """An EvalRunOutputItemResult: name, type, score, passed, sample (the judge exchange or
    None), plus ``error`` {code: the flag, message} when the grader could not grade."""
    out: dict[str, Any] = {"name": r.name, "type": r.type, "score": r.score, "passed": r.passed, "sample": r.sample}
    if r.error is not None:
        out["error"] = {"code": r.error.flag, "message": r.error.message}
    return out
