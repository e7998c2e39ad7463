"""label_model and score_model with a FAKE judge (a small class below, answering canned text):
what the judge is sent, how its answer is parsed, and how parse and call failures are reported."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from service.errors import InvalidRequest
from service.evals.graders import registry
from service.evals.graders.base import (
    GradeResult,
    GraderOptions,
    JudgeReply,
    ModelCallError,
    Namespaces,
    SchemaHints,
    Usage,
)
from service.evals.graders.template import sample_namespace
from service.protocol.graders import LabelModelGrader, ScoreModelGrader


class FakeJudge:
    """A FAKE judge: answers ``text`` (or raises ``error``) and records every call."""

    def __init__(self, text: str = "", finish_reason: str = "stop", error: ModelCallError | None = None) -> None:
        self.text, self.finish_reason, self.error = text, finish_reason, error
        self.calls: list[dict[str, Any]] = []

    async def complete(
        self,
        model: str,
        messages: list[dict[str, Any]],
        sampling: Mapping[str, Any],
        response_format: dict[str, Any] | None,
    ) -> JudgeReply:
        self.calls.append({"model": model, "messages": messages, "sampling": dict(sampling), "rf": response_format})
        if self.error is not None:
            raise self.error
        return JudgeReply(self.text, self.finish_reason, Usage(model, prompt_tokens=20, completion_tokens=5))


NS = Namespaces(item={"statement": "I love it", "ref": "4"}, sample=sample_namespace("four"))
LABEL = LabelModelGrader(
    name="sentiment",
    type="label_model",
    model="judge-model",
    input=[
        {"role": "developer", "content": "Classify the sentiment."},
        {"role": "user", "content": {"type": "input_text", "text": "Statement: {{item.statement}}"}},
    ],
    labels=["positive", "neutral", "negative"],
    passing_labels=["positive"],
)
SCORE = ScoreModelGrader(
    name="closeness",
    type="score_model",
    model="judge-model",
    input=[{"role": "user", "content": "Reference {{item.ref}}, answer {{sample.output_text}}. Score 0-10."}],
    range=[0, 10],
    pass_threshold=7,
    sampling_params={
        "temperature": 0.0,
        "top_p": 0.9,
        "seed": 3,
        "max_completions_tokens": 64,
        "reasoning_effort": "low",
    },
)


def grade(spec: Any, judge: FakeJudge | None) -> GradeResult:
    return asyncio.run(registry.grade(spec, NS, judge, GraderOptions()))


def test_label_model_sends_rendered_messages_and_a_label_schema() -> None:
    judge = FakeJudge('{"result": "positive"}')
    r = grade(LABEL, judge)
    assert (r.score, r.passed, r.error) == (1.0, True, None)
    call = judge.calls[0]
    assert call["model"] == "judge-model"
    assert call["messages"] == [
        {"role": "system", "content": "Classify the sentiment."},
        {"role": "user", "content": "Statement: I love it"},
    ]
    schema = call["rf"]["json_schema"]["schema"]
    assert call["rf"]["type"] == "json_schema" and call["rf"]["json_schema"]["strict"] is True
    assert schema["properties"]["result"] == {"type": "string", "enum": ["positive", "neutral", "negative"]}
    assert r.sample is not None and r.sample["output"] == [{"role": "assistant", "content": '{"result": "positive"}'}]
    assert r.usage == [Usage("judge-model", 20, 5)]


def test_label_outside_passing_labels_fails() -> None:
    r = grade(LABEL, FakeJudge('{"result": "neutral"}'))
    assert (r.score, r.passed, r.error) == (0.0, False, None)


@pytest.mark.parametrize(
    ("text", "finish", "says"),
    [
        ("I think it is positive", "stop", "but the judge answered 'I think it is positive'"),
        ('{"result": "pos', "length", "(the judge stopped at its token limit)"),
        ('{"result": "happy"}', "stop", 'the judge answered "happy", which is not one of the labels'),
        ('{"label": "positive"}', "stop", 'expected a JSON object {"result": ...}'),
    ],
)
def test_label_parse_failures_are_errored_items_quoting_the_judge(text: str, finish: str, says: str) -> None:
    r = grade(LABEL, FakeJudge(text, finish))
    assert r.error is not None and r.error.flag == "model_grader_parse_error"
    assert says in r.error.message
    assert (r.score, r.passed) == (0.0, False)
    assert r.sample is not None and r.sample["output"][0]["content"] == text  # what the judge said is kept
    assert r.usage  # the tokens were spent all the same


def test_judge_wrapping_its_json_in_prose_is_still_read() -> None:
    r = grade(LABEL, FakeJudge('Sure! ```json\n{"result": "positive"}\n```'))
    assert r.error is None and r.passed


def test_score_model_maps_sampling_params_and_applies_range_and_threshold() -> None:
    judge = FakeJudge('{"result": 8}')
    r = grade(SCORE, judge)
    assert (r.score, r.passed, r.error) == (8.0, True, None)
    assert judge.calls[0]["sampling"] == {"temperature": 0.0, "top_p": 0.9, "seed": 3, "max_tokens": 64}
    assert judge.calls[0]["messages"] == [{"role": "user", "content": "Reference 4, answer four. Score 0-10."}]
    assert judge.calls[0]["rf"]["json_schema"]["schema"]["properties"]["result"] == {"type": "number"}
    assert not grade(SCORE, FakeJudge('{"result": 6.5}')).passed


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"result": 11}', "the judge's score 11 is outside the range [0, 10]"),
        ('{"result": "8"}', 'the judge answered "8", which is not a number'),
        ('{"result": true}', "which is not a number"),
        ("eight", "but the judge answered 'eight'"),
    ],
)
def test_score_parse_failures(text: str, says: str) -> None:
    r = grade(SCORE, FakeJudge(text))
    assert r.error is not None and r.error.flag == "model_grader_parse_error" and says in r.error.message


def test_score_model_defaults_to_range_0_1_and_top_score_passes() -> None:
    spec = SCORE.model_copy(update={"range": None, "pass_threshold": None})
    assert grade(spec, FakeJudge('{"result": 1}')).passed
    r = grade(spec, FakeJudge('{"result": 0.9}'))
    assert r.score == 0.9 and not r.passed
    assert grade(spec, FakeJudge('{"result": 2}')).error is not None


def test_judge_call_failure_is_a_server_error() -> None:
    r = grade(SCORE, FakeJudge(error=ModelCallError("The model `nosuch` does not exist.", 404)))
    assert r.error is not None and r.error.flag == "model_grader_server_error"
    assert (
        r.error.message
        == "The judge model 'judge-model' could not answer (HTTP 404): The model `nosuch` does not exist."
    )
    assert grade(SCORE, None).error is not None


def test_missing_template_field_is_an_invalid_variable_error_before_any_call() -> None:
    spec = LabelModelGrader.model_validate(
        {**LABEL.model_dump(), "input": [{"role": "user", "content": "{{item.nope}}"}]}
    )
    judge = FakeJudge('{"result": "positive"}')
    r = grade(spec, judge)
    assert r.error is not None and r.error.flag == "invalid_variable_error"
    assert judge.calls == []


@pytest.mark.parametrize(
    ("update", "param", "says"),
    [
        ({"passing_labels": ["great"]}, "grader.passing_labels", "'great' is not one of the labels"),
        ({"labels": [], "passing_labels": []}, "grader.labels", "at least one label"),
        ({"input": []}, "grader.input", "at least one message"),
        ({"model": " "}, "grader.model", "name the judge model"),
        ({"input": [{"role": "user", "content": "{{item.x}}"}]}, "grader.input[0].content", "no field 'x'"),
    ],
)
def test_label_model_check(update: dict[str, Any], param: str, says: str) -> None:
    spec = LabelModelGrader.model_validate({**LABEL.model_dump(), **update})
    hints = SchemaHints({"type": "object", "properties": {"statement": {"type": "string"}}}, True)
    with pytest.raises(InvalidRequest) as e:
        registry.check(spec, hints, GraderOptions(), "grader")
    assert e.value.param == param and says in e.value.message


@pytest.mark.parametrize(
    ("update", "param"),
    [
        ({"range": [5, 1]}, "grader.range"),
        ({"range": [0, 1, 2]}, "grader.range"),
        ({"sampling_params": {"temperature": 3.0}}, "grader.sampling_params.temperature"),
        ({"sampling_params": {"top_p": 0.0}}, "grader.sampling_params.top_p"),
    ],
)
def test_score_model_check(update: dict[str, Any], param: str) -> None:
    spec = ScoreModelGrader.model_validate({**SCORE.model_dump(), **update})
    with pytest.raises(InvalidRequest) as e:
        registry.check(spec, SchemaHints(None, True), GraderOptions(), "grader")
    assert e.value.param == param
