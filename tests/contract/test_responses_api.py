"""The Responses API on the gateway and the inference usage it records, through the SDK against
FAKE upstreams (tests/fakes/upstream.py): what the gateway decides before any upstream sees the
request (project scoping, stateful parameters refused, 503 with no upstream, nothing stored)
and what it reads from the answers (usage per project and model, also from streams whose client
did not ask for it). The same calls against real vLLM are in tests/e2e/test_responses.py.
Every JSON answer and every streamed event is checked against the spec."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from service.catalog.catalog import BaseModelEntry, Catalog
from service.db.schema import FineTunedModel, InferenceUsage, Project
from tests.contract.openapi import SpecChecker
from tests.fakes.upstream import make_upstream
from tests.harness.node import run_node
from tests.harness.records import register_finished_model
from tests.harness.server import RunningServer, serve_app, start_server

MINE = "ft:hone-tiny:acme::Resp0001"
MINE_CKPT = MINE + ":ckpt-step-3"
THEIRS = "ft:hone-tiny:other::Resp0002"


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, FastAPI]]:
    app = make_upstream("u1", chunk_delay_s=0.01)
    url, running = serve_app(app)
    yield url, app
    running.should_exit = True


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir, upstream) -> Iterator[RunningServer]:  # type: ignore[no-untyped-def]
    url = upstream[0]
    catalog = Catalog(
        [
            BaseModelEntry(name="hone-tiny", source=str(tiny_model_dir), upstreams=[url]),
            BaseModelEntry(name="none", source=str(tiny_model_dir)),
        ]
    )
    srv = start_server(tmp_path_factory.mktemp("responses"), catalog, max_request_bytes=100_000)
    register_finished_model(srv.ctx.db, "acme", MINE, "file:///nowhere", job_id="ftjob-Resp0001xxxxxxxxxxxxxxxx")
    register_finished_model(srv.ctx.db, "other", THEIRS, "file:///nowhere", job_id="ftjob-Resp0002xxxxxxxxxxxxxxxx")
    with srv.ctx.db.session() as s:
        final = s.scalar(select(FineTunedModel).where(FineTunedModel.name == MINE))
        assert final is not None
        s.add(
            FineTunedModel(
                name=MINE_CKPT,
                project_id=final.project_id,
                job_id=final.job_id,
                base_model="hone-tiny",
                kind="checkpoint",
                uri="file:///nowhere/ckpt",
                created_at=final.created_at,
            )
        )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server: RunningServer, spec_checker: SpecChecker) -> Iterator[openai.OpenAI]:
    http = httpx.Client(event_hooks={"response": [spec_checker.hook]}, timeout=60)
    with openai.OpenAI(base_url=server.v1, api_key=server.new_key("acme"), max_retries=0, http_client=http) as c:
        yield c


def test_create_for_base_and_fine_tuned_models(client: openai.OpenAI, spec_checker: SpecChecker) -> None:
    before = spec_checker.checked
    for model in ("hone-tiny", MINE, MINE_CKPT):
        r = client.responses.create(model=model, input="hi", max_output_tokens=8)
        assert r.object == "response" and r.status == "completed" and r.model == model
        assert r.output_text == f"u1 answers for {model}"
        assert r.usage is not None and r.usage.output_tokens == 4
    r = client.responses.create(model="hone-tiny", input="hi", store=False)
    assert r.store is False
    assert spec_checker.checked >= before + 4


def test_streamed_events_end_with_response_completed(client: openai.OpenAI, spec_checker: SpecChecker) -> None:
    before = spec_checker.checked
    with client.responses.stream(model=MINE, input="hi") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    assert final.output_text == f"u1 answers for {MINE}" and final.usage is not None
    events = list(client.responses.create(model="hone-tiny", input="hi", stream=True))
    assert events[-1].type == "response.completed"
    assert spec_checker.checked == before + 2  # each stream's events validated


def test_models_are_scoped_like_chat(client: openai.OpenAI) -> None:
    for model in (THEIRS, "gpt-4o", "ft:hone-tiny:acme::Nope0001", MINE + ":ckpt-step-99"):
        with pytest.raises(openai.NotFoundError) as e:
            client.responses.create(model=model, input="hi")
        assert e.value.code == "model_not_found" and model in e.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="", input="hi")
    assert bad.value.param == "model"


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("store", True),
        ("previous_response_id", "resp_123"),
        ("background", True),
        ("conversation", "conv_123"),
        ("prompt", {"id": "pmpt_123"}),
    ],
)
def test_stateful_parameters_are_refused(client: openai.OpenAI, upstream, param: str, value) -> None:  # type: ignore[no-untyped-def]
    calls = len(upstream[1].state.calls)
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="hone-tiny", input="hi", **{param: value})
    assert e.value.param == param and param in e.value.message
    assert e.value.code == "unsupported_parameter"
    assert len(upstream[1].state.calls) == calls  # refused before any upstream saw it


def test_no_upstream_is_503(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as e:
        client.responses.create(model="none", input="hi")
    assert e.value.status_code == 503 and e.value.code == "upstream_unavailable"


def test_nothing_is_stored_so_every_response_id_is_404(client: openai.OpenAI) -> None:
    r = client.responses.create(model="hone-tiny", input="hi")
    calls = [
        lambda: client.responses.retrieve(r.id),
        lambda: client.responses.delete(r.id),
        lambda: client.responses.cancel(r.id),
        lambda: client.responses.input_items.list(r.id),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as e:
            call()
        assert r.id in e.value.message and "store" in e.value.message


def test_models_retrieve_final_and_checkpoint_names(client: openai.OpenAI) -> None:
    for name in (MINE, MINE_CKPT):
        m = client.models.retrieve(name)
        assert m.id == name and m.object == "model" and m.owned_by
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(THEIRS)


def usage_rows(server: RunningServer, project: str) -> dict[str, tuple[int, int, int]]:
    server.ctx.gateway.usage.flush()
    with server.ctx.db.session() as s:
        got: dict[str, tuple[int, int, int]] = {}
        for r in s.scalars(select(InferenceUsage).where(InferenceUsage.project_id == project)):
            i, o, n = got.get(r.model, (0, 0, 0))
            got[r.model] = (i + r.input_tokens, o + r.output_tokens, n + r.num_model_requests)
        return got


def test_usage_is_recorded_per_project_and_model(server: RunningServer) -> None:
    key = server.new_key("meter")
    with server.ctx.db.session() as s:
        meter = s.scalar(select(Project.id).where(Project.name == "meter"))
    c = openai.OpenAI(base_url=server.v1, api_key=key, max_retries=0)
    msgs = [{"role": "user", "content": "hi"}]
    c.chat.completions.create(model="hone-tiny", messages=msgs)  # type: ignore[arg-type]
    plain = list(c.chat.completions.create(model="hone-tiny", messages=msgs, stream=True))  # type: ignore[arg-type]
    asked = list(
        c.chat.completions.create(
            model="hone-tiny",
            messages=msgs,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(chunk.choices and chunk.usage is None for chunk in plain)  # the usage the gateway asked for is not shown
    assert asked[-1].usage is not None and not asked[-1].choices  # the one the client asked for is
    c.completions.create(model="hone-tiny", prompt="hi")
    c.responses.create(model="hone-tiny", input="hi")
    list(c.responses.create(model="hone-tiny", input="hi", stream=True))
    with pytest.raises(openai.NotFoundError):
        c.responses.create(model=MINE, input="hi")  # refused: no request reached a model
    assert usage_rows(server, meter) == {"hone-tiny": (5 * 4 + 6 * 2, 4 * 4 + 4 * 2, 6)}


def test_usage_rows_are_minute_buckets(server: RunningServer, client: openai.OpenAI) -> None:
    client.responses.create(model=MINE_CKPT, input="hi")
    with server.ctx.db.session() as s:
        acme = s.scalar(select(FineTunedModel.project_id).where(FineTunedModel.name == MINE))
    assert usage_rows(server, acme)[MINE_CKPT][2] >= 1
    with server.ctx.db.session() as s:
        starts = list(s.scalars(select(InferenceUsage.bucket_start)))
    assert starts and all(b % 60 == 0 and b <= time.time() for b in starts)


def test_through_the_node_sdk(server: RunningServer, tmp_path: Path) -> None:
    results = run_node(
        "responses.mjs",
        tmp_path,
        base_url=server.v1,
        api_key=server.new_key("acme"),
        env={
            "HONE_MODEL": MINE,
            "HONE_CHECKPOINT": MINE_CKPT,
            "HONE_THEIRS": THEIRS,
            "HONE_QUESTION": "hi",
            "HONE_ANSWER": f"u1 answers for {MINE}",
        },
    )
    assert results["refused"] == {"store": 400, "previous_response_id": 400, "background": 400}
    assert results["events"] >= 3
