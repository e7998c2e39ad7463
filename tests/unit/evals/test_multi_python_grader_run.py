"""multi (formula over inner scores), the python grader's gate and its run through the sandbox,
result_to_wire, and the RunGraderResponse graders/run builds."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from service.errors import InvalidRequest
from service.evals import grader_run
from service.evals.config import PythonGraderSettings
from service.evals.graders import registry
from service.evals.graders.base import GradeError, GradeResult, GraderOptions, Namespaces, SchemaHints, Usage
from service.evals.graders.template import sample_namespace
from service.evals.sandbox import sandbox_ready
from service.protocol.graders import MultiGrader, PythonGrader, RunGraderParams

OPTIONS = GraderOptions()
HINTS = SchemaHints(None, True)
NS = Namespaces(item={"label": "Paris"}, sample=sample_namespace("Paris is the capital"))
EXACT = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}", "reference": "{{item.label}}",
         "operation": "eq"}  # fmt: skip
CONTAINS = {**EXACT, "name": "contains", "operation": "like"}
FUZZY = {"type": "text_similarity", "name": "fuzzy", "input": "{{sample.output_text}}", "reference": "{{item.label}}",
         "evaluation_metric": "fuzzy_match"}  # fmt: skip


def multi(formula: str, graders: Any = None) -> MultiGrader:
    graders = graders if graders is not None else {"exact": EXACT, "contains": CONTAINS, "fuzzy": FUZZY}
    return MultiGrader.model_validate({"type": "multi", "name": "m", "graders": graders, "calculate_output": formula})


def grade(spec: Any, options: GraderOptions = OPTIONS) -> GradeResult:
    return asyncio.run(registry.grade(spec, NS, None, options))


def test_multi_evaluates_the_formula_over_inner_scores() -> None:
    fuzzy = 2 * 5 / (len("Paris is the capital") + 5)  # "Paris" is 5 of the 20 characters: Indel similarity
    r = grade(multi("0.5 * contains + 0.5 * fuzzy + exact"))
    assert r.error is None
    assert r.sub_rewards == pytest.approx({"exact": 0.0, "contains": 1.0, "fuzzy": fuzzy})
    assert r.score == pytest.approx(0.5 + 0.5 * fuzzy)
    assert not r.passed  # exact failed
    assert grade(multi("contains ^ 2 + max(exact, floor(fuzzy)) + sqrt(4) + log(exp(1))")).score == pytest.approx(4.0)
    assert grade(multi("2 * (contains + 1) ^ 3")).score == 16.0  # ^ is a power and binds tighter than *


def test_a_single_inner_grader_is_named_by_its_name() -> None:
    r = grade(multi("contains * 3", CONTAINS))
    assert (r.score, r.sub_rewards, r.passed) == (3.0, {"contains": 1.0}, True)


@pytest.mark.parametrize(
    ("formula", "says"),
    [
        ("0.5 * exact +", "the formula does not parse"),
        ("exact + recall", "'recall' is not a grader of this multi grader (its graders: exact, contains, fuzzy)"),
        ("pow(exact, 2)", "unknown function 'pow'"),
    ],
)
def test_multi_check_refuses_bad_formulas(formula: str, says: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        registry.check(multi(formula), HINTS, OPTIONS, "grader")
    assert e.value.param == "grader.calculate_output" and says in e.value.message


def test_multi_check_reaches_inner_graders() -> None:
    bad = {**EXACT, "reference": "{{answer.label}}"}
    with pytest.raises(InvalidRequest) as e:
        registry.check(multi("exact", {"exact": bad}), HINTS, OPTIONS, "grader")
    assert e.value.param == "grader.graders.exact.reference"


def test_formula_that_cannot_be_computed_is_a_formula_error() -> None:
    r = grade(multi("contains / exact"))
    assert r.error is not None and r.error.flag == "formula_parse_error" and "could not be computed" in r.error.message
    assert r.sub_rewards == pytest.approx({"exact": 0.0, "contains": 1.0, "fuzzy": 2 * 5 / 25})


def test_inner_error_errors_the_multi_grader() -> None:
    r = grade(multi("exact", {"exact": {**EXACT, "reference": "{{item.nope}}"}}))
    assert r.error is not None and r.error.flag == "invalid_variable_error"
    assert r.error.message.startswith("grader 'exact': ")


PY = PythonGrader(
    type="python",
    name="py",
    source="def grade(sample, item):\n    return 1.0 if item['label'] in sample['output_text'] else 0.25\n",
    pass_threshold=0.5,
)


def test_python_grader_is_refused_unless_enabled() -> None:
    with pytest.raises(InvalidRequest) as e:
        registry.check(PY, HINTS, OPTIONS, "testing_criteria[0]")
    assert e.value.param == "testing_criteria[0].type"
    assert "HONE_EVALS__PYTHON_GRADER__ENABLED=true" in e.value.message


ENABLED = GraderOptions(python=PythonGraderSettings(enabled=True))


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("def grade(sample, item):\n    return (\n", "line 2"),
        ("def score(sample, item):\n    return 1.0\n", "define a function grade(sample: dict, item: dict) -> float"),
    ],
)
def test_python_grader_check_reads_the_source(source: str, says: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        registry.check(PY.model_copy(update={"source": source}), HINTS, ENABLED, "grader")
    assert e.value.param == "grader.source" and says in e.value.message


@pytest.mark.skipif(sandbox_ready() is not None, reason=f"no sandbox here: {sandbox_ready()}")
def test_python_grader_runs_in_the_sandbox() -> None:
    r = grade(PY, ENABLED)
    assert (r.score, r.passed, r.error) == (1.0, True, None)
    raising = grade(
        PY.model_copy(update={"source": "def grade(sample, item):\n    raise ValueError('bad item')\n"}), ENABLED
    )
    assert raising.error is not None and raising.error.flag == "python_grader_runtime_error"
    assert "bad item" in raising.error.message


def test_result_to_wire() -> None:
    ok = GradeResult("g", "string_check", 1.0, True)
    assert registry.result_to_wire(ok) == {
        "name": "g",
        "type": "string_check",
        "score": 1.0,
        "passed": True,
        "sample": None,
    }
    bad = GradeResult("g", "label_model", 0.0, False, error=GradeError("model_grader_parse_error", "no JSON"))
    wire = registry.result_to_wire(bad)
    assert wire["error"] == {"code": "model_grader_parse_error", "message": "no JSON"} and wire["passed"] is False


def test_run_response_sets_the_flag_details_and_usage() -> None:
    r = GradeResult(
        "judge",
        "score_model",
        0.0,
        False,
        error=GradeError("model_grader_server_error", "HTTP 503: no upstream"),
        usage=[Usage("m1", 10, 2, 4), Usage("m1", 5, 1), Usage("m2", 1, 1)],
    )
    resp = grader_run.response(r, 0.25)
    errors = resp.metadata.errors
    assert errors.model_grader_server_error and errors.model_grader_server_error_details == "HTTP 503: no upstream"
    assert errors.details == "HTTP 503: no upstream" and not errors.model_grader_parse_error
    assert resp.model_grader_token_usage_per_model == {
        "m1": {"prompt_tokens": 15, "completion_tokens": 3, "total_tokens": 18, "cached_tokens": 4},
        "m2": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2, "cached_tokens": 0},
    }
    assert resp.metadata.token_usage == 20 and resp.metadata.sampled_model_name == "m1"
    assert (resp.reward, resp.metadata.execution_time, resp.metadata.type) == (0.0, 0.25, "score_model")


def test_run_grades_the_model_sample_and_item() -> None:
    params = RunGraderParams.model_validate(
        {
            "grader": multi("exact + contains").model_dump(),
            "model_sample": '{"city": "Paris"}',
            "item": {"label": "Paris"},
        }
    )
    resp = asyncio.run(grader_run.run(params, None, OPTIONS))
    assert resp.reward == 1.0 and resp.sub_rewards == pytest.approx({"exact": 0.0, "contains": 1.0, "fuzzy": 10 / 22})
    assert resp.metadata.token_usage is None and not any(
        v for k, v in resp.metadata.errors.model_dump().items() if k != "details"
    )
    assert math.isfinite(resp.metadata.execution_time)
