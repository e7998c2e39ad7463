"""``hone eval compare`` without a server: the held-out file's parsing, and the refusals that
come before any eval is created (a job that did not succeed, a job without a validation file).
The HTTP answers come from a fake (``httpx.MockTransport``); the whole loop against real hone
and vLLM is tests/e2e/test_evals.py."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from service.evals import compare
from tests.harness.cli import run_cli


def fake_hone(job: dict[str, Any], seen: list[str]) -> httpx.MockTransport:
    """A fake hone that knows one job and refuses everything else with a 404."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.method == "GET" and request.url.path == f"/v1/fine_tuning/jobs/{job['id']}":
            return httpx.Response(200, json=job)
        return httpx.Response(404, json={"error": {"message": "not in this fake", "type": "invalid_request_error"}})

    return httpx.MockTransport(handle)


def run(job: dict[str, Any], capsys: pytest.CaptureFixture[str], **opts: Any) -> tuple[int, str, list[str]]:
    seen: list[str] = []
    rc = compare.main(
        compare.Options(job_id=job["id"], **opts), "http://hone.test/v1", "sk-test", transport=fake_hone(job, seen)
    )
    return rc, capsys.readouterr().err, seen


def test_a_job_that_did_not_succeed_is_refused_before_anything_is_created(capsys: pytest.CaptureFixture[str]) -> None:
    rc, err, seen = run({"id": "ftjob-1", "status": "running", "model": "m", "validation_file": "file-v"}, capsys)
    assert rc == 2
    assert err.strip() == "error: job ftjob-1 is running: only a succeeded job has a model to compare"
    assert seen == ["GET /v1/fine_tuning/jobs/ftjob-1"]


def test_a_job_without_validation_file_needs_file(capsys: pytest.CaptureFixture[str]) -> None:
    job = {
        "id": "ftjob-2",
        "status": "succeeded",
        "model": "m",
        "fine_tuned_model": "ft:m:p::x",
        "validation_file": None,
    }
    rc, err, _ = run(job, capsys)
    assert rc == 2 and "has no validation file: pass a held-out chat JSONL file with --file" in err
    rc, err, seen = run(job, capsys, file_id="file-held")
    assert rc == 2 and "GET /files/file-held/content: HTTP 404: not in this fake" in err
    assert seen[-1] == "GET /v1/files/file-held/content"


def test_the_cli_without_a_key_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("HONE_DATA_DIR", str(tmp_path))
    assert run_cli(["eval", "compare", "ftjob-x"]) == 2
    assert "no API key" in capsys.readouterr().err


def test_held_out_items_split_each_conversation_at_its_last_answer() -> None:
    lines = [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Q1"},
                {"role": "assistant", "content": "A1"},
            ]
        },
        {"messages": [{"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A2"}]},
    ]
    items = compare.held_out_items("\n".join(json.dumps(x) for x in lines) + "\n\n", "file-h")
    assert items == [
        {"input": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q1"}], "reference": "A1"},
        {"input": [{"role": "user", "content": "Q2"}], "reference": "A2"},
    ]


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("not json", "file-h line 2: not a JSON object with 'messages'"),
        (
            json.dumps({"messages": [{"role": "user", "content": "Q"}]}),
            "file-h line 2: the last message is not an assistant",
        ),
        (
            json.dumps({"messages": [{"role": "assistant", "content": "A"}]}),
            "file-h line 2: the messages before the answer",
        ),
    ],
)
def test_held_out_lines_that_cannot_be_items_name_their_line(line: str, why: str) -> None:
    good = json.dumps({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]})
    with pytest.raises(compare.CompareError) as e:
        compare.held_out_items(good + "\n" + line, "file-h")
    assert str(e.value).startswith(why)


def test_the_criteria_are_the_spec_graders() -> None:
    exact = compare.testing_criterion("string_check", 0.9)
    assert exact["operation"] == "eq" and exact["reference"] == "{{item.reference}}"
    fuzzy = compare.testing_criterion("fuzzy_match", 0.75)
    assert fuzzy["type"] == "text_similarity" and fuzzy["evaluation_metric"] == "fuzzy_match"
    assert fuzzy["pass_threshold"] == 0.75
    source = compare.completions_source("m", [{"input": [], "reference": "r"}], 8)
    assert source["input_messages"] == {"type": "item_reference", "item_reference": "item.input"}
    assert source["source"]["content"] == [{"item": {"input": [], "reference": "r"}}]
