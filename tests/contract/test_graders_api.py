"""/v1/fine_tuning/alpha/graders/validate and /run through the official SDK (every response
checked against the OpenAI spec by the ``client`` fixture). Model graders call a judge through
hone's gateway; here the catalog's ``hone-tiny`` is served by a FAKE upstream
(tests/fakes/upstream.py) that answers prose, never the judge's JSON, so the judge path is
proved up to its parse failure. Judges on real vLLM are in the e2e tests."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from service.catalog.catalog import BaseModelEntry, Catalog
from tests.fakes.upstream import make_upstream
from tests.harness.server import RunningServer, serve_app, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir) -> Iterator[RunningServer]:  # type: ignore[no-untyped-def]
    url, upstream = serve_app(make_upstream("fake-judge"))
    catalog = Catalog([BaseModelEntry(name="hone-tiny", source=str(tiny_model_dir), upstreams=[url])])
    srv = start_server(tmp_path_factory.mktemp("graders"), catalog)
    yield srv
    srv.stop()
    upstream.should_exit = True


EXACT: dict[str, Any] = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.label}}",
    "operation": "eq",
}
SCORE: dict[str, Any] = {
    "type": "score_model",
    "name": "judge",
    "model": "hone-tiny",
    "input": [
        {"role": "system", "content": "Score 0 to 1 how close the answer is to the reference."},
        {"role": "user", "content": [{"type": "input_text", "text": "{{item.label}} / {{sample.output_text}}"}]},
    ],
    "sampling_params": {"temperature": 0, "max_completions_tokens": 16},
}


# label_model grades only inside a multi grader here (the spec's RunGraderRequest leaves it out).
LABEL = {
    "type": "label_model",
    "name": "l",
    "model": "hone-tiny",
    "input": [{"role": "user", "content": "x"}],
    "labels": ["yes", "no"],
    "passing_labels": ["yes"],
}


def bad_request(call: Any) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as e:
        call()
    return e.value


def errors_set(resp: Any) -> set[str]:
    return {k for k, v in resp.metadata.errors.to_dict().items() if v is True}


def test_validate_returns_the_grader(client: openai.OpenAI) -> None:
    sim = {"type": "text_similarity", "name": "s", "input": "{{sample.output_text}}", "reference": "{{item.label}}",
           "evaluation_metric": "rouge_l"}  # fmt: skip
    multi = {"type": "multi", "name": "m", "graders": EXACT, "calculate_output": "0.5 * exact + 0.5"}
    judged = {"type": "multi", "name": "j", "graders": {"l": LABEL}, "calculate_output": "l"}
    for grader in (EXACT, sim, SCORE, multi, judged):
        assert client.fine_tuning.alpha.graders.validate(grader=grader).grader.to_dict() == grader  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("grader", "param", "says"),
    [
        ({**EXACT, "input": "{{answer.text}}"}, "grader.input", "unknown namespace 'answer'"),
        (
            {"type": "text_similarity", "name": "s", "input": "a", "reference": "b", "evaluation_metric": "cosine"},
            "grader.evaluation_metric",
            "HONE_EVALS__EMBEDDING_MODEL",
        ),
        ({**SCORE, "range": [1, 0]}, "grader.range", "min < max"),
        (
            {"type": "multi", "name": "m", "graders": {"exact": EXACT}, "calculate_output": "exact + recall"},
            "grader.calculate_output",
            "'recall' is not a grader of this multi grader",
        ),
        (
            {"type": "python", "name": "p", "source": "def grade(sample, item):\n    return 1.0\n"},
            "grader.type",
            "HONE_EVALS__PYTHON_GRADER__ENABLED=true",
        ),
        ({**LABEL, "passing_labels": ["yes"]}, "grader.type", "Supported values are: 'string_check',"),  # as the spec
        (
            {
                "type": "multi",
                "name": "m",
                "graders": {"l": {**LABEL, "passing_labels": ["maybe"]}},
                "calculate_output": "l",
            },  # fmt: skip
            "grader.graders.l.passing_labels",
            "'maybe' is not one of the labels",
        ),
    ],
)
def test_bad_graders_are_400s_naming_the_field(client: openai.OpenAI, grader: Any, param: str, says: str) -> None:
    for call in (
        lambda: client.fine_tuning.alpha.graders.validate(grader=grader),
        lambda: client.fine_tuning.alpha.graders.run(grader=grader, model_sample="x"),
    ):
        err = bad_request(call)
        assert err.body["param"] == param  # type: ignore[index]
        assert says in err.body["message"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("grader", "field", "says"),
    [
        ({**EXACT, "operation": "regex"}, "operation", "Supported values are: 'eq', 'ne', 'like', and 'ilike'"),
        ({k: v for k, v in EXACT.items() if k != "reference"}, "reference", "Missing required parameter"),
        ({**EXACT, "input": 3}, "input", "expected a string, but got an integer"),
        (
            {"type": "multi", "name": "m", "graders": {"a": {**EXACT, "operation": "re"}}, "calculate_output": "a"},
            "graders.a.operation",
            "Supported values are",
        ),
    ],
)
def test_malformed_graders_are_400s(client: openai.OpenAI, grader: Any, field: str, says: str) -> None:
    # pydantic's own errors, worded by service.param_errors; the union's tag is not in the param
    err = bad_request(lambda: client.fine_tuning.alpha.graders.validate(grader=grader))
    assert err.body["param"] == f"grader.{field}"  # type: ignore[index]
    assert says in err.body["message"] and f"'grader.{field}'" in err.body["message"]  # type: ignore[index]


def test_run_string_check(client: openai.OpenAI) -> None:
    resp = client.fine_tuning.alpha.graders.run(grader=EXACT, model_sample="Paris", item={"label": "Paris"})  # type: ignore[arg-type]
    assert resp.reward == 1.0
    assert (resp.metadata.name, resp.metadata.type) == ("exact", "string_check")
    assert errors_set(resp) == set() and resp.metadata.token_usage is None
    assert math.isfinite(resp.metadata.execution_time)
    miss = client.fine_tuning.alpha.graders.run(grader=EXACT, model_sample="Lyon", item={"label": "Paris"})  # type: ignore[arg-type]
    assert miss.reward == 0.0 and errors_set(miss) == set()


def test_run_text_similarity_bleu(client: openai.OpenAI) -> None:
    grader = {"type": "text_similarity", "name": "b", "input": "{{sample.output_text}}", "reference": "{{item.ref}}",
              "evaluation_metric": "bleu"}  # fmt: skip
    resp = client.fine_tuning.alpha.graders.run(
        grader=grader,  # type: ignore[arg-type]
        model_sample="the cat is on the mat",
        item={"ref": "the cat sat on the mat"},
    )
    # n-gram precisions 5/6, 3/5, 1/4 and 0/3 (smoothed to 1/6 by sacrebleu's exp method), BP 1
    assert resp.reward == pytest.approx(math.prod([5 / 6, 3 / 5, 1 / 4, 1 / 6]) ** 0.25)


def test_run_multi_reads_output_json(client: openai.OpenAI) -> None:
    grader = {
        "type": "multi",
        "name": "m",
        "graders": {
            "city": {**EXACT, "name": "city", "input": "{{sample.output_json.city}}"},
            "mentions": {**EXACT, "name": "mentions", "operation": "ilike", "input": "{{sample.output_text}}"},
        },
        "calculate_output": "0.75 * city + 0.25 * mentions ^ 2",
    }
    resp = client.fine_tuning.alpha.graders.run(
        grader=grader,  # type: ignore[arg-type]
        model_sample='{"city": "Paris", "country": "France"}',
        item={"label": "Paris"},
    )
    assert resp.reward == 1.0 and resp.sub_rewards == {"city": 1.0, "mentions": 1.0}
    wrong = client.fine_tuning.alpha.graders.run(
        grader=grader,  # type: ignore[arg-type]
        model_sample='{"city": "Lyon"}',
        item={"label": "Paris"},
    )
    assert wrong.reward == 0.0 and wrong.sub_rewards == {"city": 0.0, "mentions": 0.0}


def test_run_missing_item_field_is_an_invalid_variable_error(client: openai.OpenAI) -> None:
    resp = client.fine_tuning.alpha.graders.run(grader=EXACT, model_sample="Paris", item={"answer": "Paris"})  # type: ignore[arg-type]
    assert resp.reward == 0.0 and errors_set(resp) == {"invalid_variable_error"}
    assert "item.label" in resp.metadata.errors.to_dict()["details"]


def test_run_score_model_reports_the_judges_parse_failure(client: openai.OpenAI) -> None:
    resp = client.fine_tuning.alpha.graders.run(grader=SCORE, model_sample="Paris", item={"label": "Paris"})  # type: ignore[arg-type]
    assert resp.reward == 0.0 and errors_set(resp) == {"model_grader_parse_error"}
    assert "fake-judge answers for hone-tiny" in resp.metadata.errors.to_dict()["details"]  # what the FAKE said
    assert resp.metadata.sampled_model_name == "hone-tiny"
    assert set(resp.to_dict()["model_grader_token_usage_per_model"]) == {"hone-tiny"}


def test_run_score_model_with_an_unknown_judge_is_a_server_error(client: openai.OpenAI) -> None:
    grader = {**SCORE, "model": "no-such-judge"}
    resp = client.fine_tuning.alpha.graders.run(grader=grader, model_sample="Paris", item={"label": "Paris"})  # type: ignore[arg-type]
    assert errors_set(resp) == {"model_grader_server_error"}
    details = resp.metadata.errors.to_dict()["model_grader_server_error_details"]
    assert isinstance(details, str) and "no-such-judge" in details and "HTTP 404" in details
