"""A real pretrained model fine-tuned and served end to end, as the README demo does it: ``hone
up`` as its own process with ``HONE_MODELS=smollm2-135m-instruct`` (the model built once into
tests/.cache, linked into the data dir), its local trainer and its supervised vLLM-CPU. Through
the official SDK: upload the demo's fictional facts (examples/data/veloria.jsonl), fine-tune with
LoRA, and the fine-tuned model answers them as trained while the base model does not (it makes
up its own answers); both still know the capital of France. After Ctrl-C nothing of vLLM is
left listening."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.harness.jobs import wait_status
from tests.harness.process import ServerProcess, hone_up
from tests.harness.vllm import NEEDS_VLLM

pytestmark = [*NEEDS_VLLM, pytest.mark.db_incidental]

MODEL = "smollm2-135m-instruct"
DATA = Path(__file__).resolve().parents[2] / "examples" / "data" / "veloria.jsonl"
# The demo's hyperparameters (examples/demo.py): 12 examples, one per step, 48 steps.
HYPERPARAMETERS = {"n_epochs": 4, "batch_size": 1, "learning_rate_multiplier": 5}
INVENTED = ("Quenmar", "Threnwick", "silver lynx", "Ostrava")  # in the answers, in no base model


def facts() -> dict[str, str]:
    """question -> trained answer, one question of each paraphrase group (the first four)."""
    rows = [json.loads(line)["messages"] for line in DATA.read_text().splitlines()]
    return {m[0]["content"]: m[1]["content"] for m in rows[:4]}


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory, smollm2_model_dir: Path) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("smollm2-up")
    with hone_up(workdir, {MODEL: smollm2_model_dir}) as server:
        yield server
    vllm_ports = [int(p) for p in re.findall(r"starting vLLM for \S+ on 127\.0\.0\.1:(\d+)", server.log.read_text())]
    assert vllm_ports, server.log.read_text()[-3000:]
    for port in vllm_ports:
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


@pytest.fixture(scope="module")
def client(up: ServerProcess) -> openai.OpenAI:
    return up.client()


def chat(client: openai.OpenAI, model: str, question: str) -> str:
    r = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}], max_tokens=24, temperature=0
    )
    return (r.choices[0].message.content or "").strip()


def test_the_catalog_offers_the_built_in_model(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]


def test_fine_tuned_smollm2_knows_the_fictional_facts_and_the_base_does_not(client: openai.OpenAI) -> None:
    file = client.files.create(file=(DATA.name, DATA.read_bytes()), purpose="fine-tune")
    started = time.monotonic()
    job = client.fine_tuning.jobs.create(
        model=MODEL,
        training_file=file.id,
        seed=1,
        suffix="veloria",
        method={"type": "supervised", "supervised": {"hyperparameters": HYPERPARAMETERS}},
    )
    # A bound, not a measure: 286 s, 678 s and 1,243 s here on 2 cores that other CPU jobs shared.
    job = wait_status(client, job.id, timeout=3600)
    assert job.status == "succeeded", job.error
    print(f"fine-tuning took {time.monotonic() - started:.0f} s")
    assert job.fine_tuned_model.startswith(f"ft:{MODEL}:big:veloria:")
    for question, answer in facts().items():
        assert chat(client, job.fine_tuned_model, question) == answer
        [taught] = [name for name in INVENTED if name in answer and name not in question]
        assert taught not in chat(client, MODEL, question)
    for model in (MODEL, job.fine_tuned_model):
        assert "Paris" in chat(client, model, "What is the capital of France?")
