"""hone's extensions beside the fine-tuning jobs, through the official SDK's generic calls:
the dataset check (the job validator's rules, run before a job, with the first problems by
line) and the methods listing ("auto" explained from contract.hyperparameters). They are not in
OpenAI's spec, so their bodies are checked against hone's wire types instead."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from contract.hyperparameters import AUTO_RULES, auto_n_epochs
from contract.methods import METHODS
from service.protocol.fine_tuning_extensions import DatasetCheck, MethodList
from tests.contract.helpers import chat_line, dpo_line, jsonl
from tests.harness.jobs import upload, wait_status

GOOD = [chat_line(i) for i in range(12)]


@pytest.fixture(scope="module")
def ext(server: Any, api_key: str) -> Iterator[openai.OpenAI]:
    """The SDK without the spec checker: these routes are hone's, not OpenAI's."""
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key=api_key, max_retries=0) as c:
        yield c


def check(client: openai.OpenAI, file_id: str, method: str = "supervised", model: str = "hone-tiny") -> DatasetCheck:
    body = {"training_file": file_id, "model": model, "method": {"type": method}}
    resp = client.post("/fine_tuning/dataset_checks", body=body, cast_to=httpx.Response)
    return DatasetCheck.model_validate_json(resp.content, strict=True)


def test_a_good_file_is_valid_with_its_counts(ext: openai.OpenAI) -> None:
    result = check(ext, upload(ext, GOOD))
    assert result.valid and result.errors == [] and not result.truncated
    assert result.n_examples == 12 and result.n_tokens > 12 * 5
    assert 0 < result.max_example_tokens <= result.max_tokens
    assert result.auto_hyperparameters["n_epochs"] == auto_n_epochs(12)


def test_a_file_with_several_errors_lists_them_in_line_order(ext: openai.OpenAI) -> None:
    lines = [json.dumps(chat_line(i)) for i in range(13)]
    lines[2] = json.dumps({"messages": [{"role": "bot", "content": "x"}]})  # line 3
    lines[6] = json.dumps({"messages": [{"role": "user", "content": "hi"}]})  # line 7: no assistant
    lines[9] = json.dumps({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}]})
    result = check(ext, upload(ext, ("\n".join(lines) + "\n").encode()))
    assert not result.valid
    assert [e.line for e in result.errors] == [3, 7, 10]
    assert all(e.param == "training_file" and e.code == "invalid_training_file" for e in result.errors)
    assert "Line 3" in result.errors[0].message and "role" in result.errors[0].message
    assert "assistant" in result.errors[1].message
    assert result.errors[2].where == "message 1" and "content" in result.errors[2].message
    assert result.n_examples == 10  # the lines that passed


def test_the_first_error_is_the_one_the_job_fails_with(client: openai.OpenAI, ext: openai.OpenAI) -> None:
    lines = [json.dumps(r) for r in GOOD]
    lines[4] = json.dumps({"prompt": "x"})
    lines[8] = "{}"
    file_id = upload(ext, ("\n".join(lines) + "\n").encode())
    result = check(ext, file_id)
    job = client.fine_tuning.jobs.create(model="hone-tiny", training_file=file_id)
    failed = wait_status(client, job.id)
    assert failed.status == "failed" and failed.error is not None
    assert (failed.error.code, failed.error.message) == (result.errors[0].code, result.errors[0].message)


def test_many_errors_are_cut_at_ten(ext: openai.OpenAI) -> None:
    rows = [{"messages": []}] * 30
    result = check(ext, upload(ext, jsonl(rows)))
    assert [e.line for e in result.errors] == list(range(1, 11)) and result.truncated


def test_too_few_examples(ext: openai.OpenAI) -> None:
    result = check(ext, upload(ext, GOOD[:3]))
    assert not result.valid and result.n_examples == 3 and result.min_examples == 10
    [error] = result.errors
    assert error.line is None and error.code == "invalid_n_examples" and "at least 10" in error.message


def test_dpo_data_against_supervised_and_back(ext: openai.OpenAI) -> None:
    dpo_file = upload(ext, [dpo_line(i) for i in range(12)])
    as_sft = check(ext, dpo_file, "supervised")
    assert not as_sft.valid and as_sft.errors[0].line == 1 and "messages" in as_sft.errors[0].message
    as_dpo = check(ext, dpo_file, "dpo")
    assert as_dpo.valid and as_dpo.method == "dpo" and as_dpo.n_examples == 12
    assert as_dpo.auto_hyperparameters["beta"] == 0.1


def test_another_projects_file_is_404(server: Any, ext: openai.OpenAI) -> None:
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key=server.new_key("other"), max_retries=0) as other:
        theirs = upload(other, GOOD)
    for file_id in (theirs, "file-nothere"):
        with pytest.raises(openai.NotFoundError) as info:
            check(ext, file_id)
        assert info.value.body["param"] == "training_file"  # type: ignore[index]


def test_unknown_model_and_method_are_400(ext: openai.OpenAI) -> None:
    file_id = upload(ext, GOOD)
    with pytest.raises(openai.BadRequestError) as info:
        check(ext, file_id, model="no-such-model")
    assert info.value.body["param"] == "model"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as info:
        check(ext, file_id, method="reinforcement")
    assert info.value.body["param"] == "method.type"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as info:
        check(ext, file_id, method="magic")
    assert info.value.body["param"] == "method.type"  # type: ignore[index]


def test_methods_list_the_registry_with_auto_explained(ext: openai.OpenAI) -> None:
    resp = ext.get("/fine_tuning/methods", cast_to=httpx.Response)
    listing = MethodList.model_validate_json(resp.content, strict=True)
    assert [m.name for m in listing.data] == list(METHODS.names)
    assert "reinforcement" in listing.refused
    for method in listing.data:
        fields = {h.name: h for h in method.hyperparameters}
        assert list(fields) == list(METHODS.get(method.name).hyperparameters.model_fields)
        assert fields["n_epochs"].default == "auto" and fields["n_epochs"].auto == AUTO_RULES["n_epochs"]
        assert fields["lora_rank"].auto is None and fields["lora_rank"].default == 16
    dpo = next(m for m in listing.data if m.name == "dpo")
    assert next(h for h in dpo.hyperparameters if h.name == "beta").auto == AUTO_RULES["beta"]


def test_checks_beyond_the_concurrency_limit_are_429_until_a_place_frees(server: Any, ext: openai.OpenAI) -> None:
    file_id = upload(ext, GOOD)
    running = server.ctx.dataset_checks
    held = 0
    while running.acquire(blocking=False):  # every place taken, as by that many long checks
        held += 1
    assert held == server.settings.dataset_check_concurrency
    try:
        with pytest.raises(openai.RateLimitError) as exc:
            check(ext, file_id)
        assert exc.value.code == "rate_limit_exceeded"
        assert exc.value.response.headers["retry-after"] == "2"
    finally:
        for _ in range(held):
            running.release()
    assert check(ext, file_id).valid  # a place is free again


def test_a_long_unknown_model_or_file_id_is_not_echoed_whole(client: openai.OpenAI, ext: openai.OpenAI) -> None:
    long = "m" * 100_000
    with pytest.raises(openai.BadRequestError) as exc:
        check(ext, upload(ext, GOOD), model=long)
    assert exc.value.param == "model" and len(exc.value.message) < 300
    with pytest.raises(openai.BadRequestError) as exc:
        client.fine_tuning.jobs.create(model="hone-tiny", training_file="file-" + long)
    assert exc.value.param == "training_file" and len(exc.value.message) < 300
