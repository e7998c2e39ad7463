"""The gateway through the SDK against FAKE upstreams (tests/fakes/upstream.py): project
scoping of models, rendezvous affinity and failover, 503 when upstreams are down or time out,
streaming passed through chunk by chunk, and the request size limit."""

from __future__ import annotations

import time
from collections.abc import Iterator

import openai
import pytest

from service.catalog.catalog import BaseModelEntry, Catalog
from tests.fakes.upstream import make_upstream
from tests.harness.ports import free_port, refuses
from tests.harness.records import register_finished_model
from tests.harness.server import RunningServer, serve_app, start_server
from tests.harness.waiting import wait_until


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, object]]:
    apps = {name: make_upstream(name) for name in ("u1", "u2", "u3")}
    served = {name: serve_app(app) for name, app in apps.items()}
    yield {
        "apps": apps,
        "urls": {n: u for n, (u, _) in served.items()},
        "servers": {n: s for n, (_, s) in served.items()},
    }
    for _, s in served.values():
        s.should_exit = True


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir, upstreams) -> Iterator[RunningServer]:  # type: ignore[no-untyped-def]
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    slow_url, slow = serve_app(make_upstream("slow", hang_s=30))
    dying_url, dying = serve_app(make_upstream("dying", chunk_delay_s=0.01, break_after_chunks=2))
    catalog = Catalog(
        [
            BaseModelEntry(name="hone-tiny", source=str(tiny_model_dir), upstreams=list(upstreams["urls"].values())),  # type: ignore[union-attr]
            BaseModelEntry(name="down", source=str(tiny_model_dir), upstreams=[dead]),
            BaseModelEntry(name="slow", source=str(tiny_model_dir), upstreams=[slow_url]),
            BaseModelEntry(name="none", source=str(tiny_model_dir)),
            BaseModelEntry(name="dying", source=str(tiny_model_dir), upstreams=[dying_url]),
        ]
    )
    srv = start_server(tmp_path_factory.mktemp("gw"), catalog, upstream_timeout_s=1.0, max_request_bytes=100_000)
    yield srv
    srv.stop()
    slow.should_exit = dying.should_exit = True


def _tuned(server: RunningServer, project: str, name: str, deleted: bool = False) -> None:
    """Registers a fine-tuned model row directly, standing in for a finished job."""
    register_finished_model(
        server.ctx.db, project, name, "file:///nowhere", job_id=f"ftjob-{name[-8:]}{'x' * 16}", deleted=deleted
    )


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key=server.new_key("acme"), max_retries=0)


def ask(client: openai.OpenAI, model: str, **kw) -> str:  # type: ignore[no-untyped-def]
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], **kw)
    return r.choices[0].message.content or ""


def test_models_are_scoped_to_the_project(server: RunningServer, client: openai.OpenAI) -> None:
    mine, theirs, gone = "ft:hone-tiny:acme::Mine0001", "ft:hone-tiny:other::Their001", "ft:hone-tiny:acme::Gone0001"
    _tuned(server, "acme", mine)
    _tuned(server, "other", theirs)
    _tuned(server, "acme", gone, deleted=True)
    assert ask(client, mine).endswith(f"answers for {mine}")
    assert "answers for hone-tiny" in ask(client, "hone-tiny")
    for model in (theirs, gone, "gpt-4o", "ft:hone-tiny:acme::AbCdEfGh"):
        with pytest.raises(openai.NotFoundError) as e:
            ask(client, model)
        assert e.value.code == "model_not_found" and model in e.value.message


def test_rendezvous_affinity_and_failover(server: RunningServer, client: openai.OpenAI, upstreams) -> None:  # type: ignore[no-untyped-def]
    names = [f"ft:hone-tiny:acme::Aff{i:05d}" for i in range(12)]
    for n in names:
        _tuned(server, "acme", n)
    first = {n: ask(client, n).split()[0] for n in names}
    assert all(ask(client, n).split()[0] == first[n] for n in names for _ in range(3))  # sticky
    assert len(set(first.values())) >= 2  # and spread over upstreams
    victim = first[names[0]]
    upstreams["servers"][victim].should_exit = True
    wait_until(lambda: refuses(upstreams["urls"][victim]), f"upstream {victim} to stop listening", 30)
    moved = ask(client, names[0]).split()[0]
    assert moved != victim
    untouched = [n for n in names if first[n] != victim]
    assert all(ask(client, n).split()[0] == first[n] for n in untouched)  # the others do not move


def test_unavailable_and_slow_upstreams_are_503(client: openai.OpenAI) -> None:
    for model in ("down", "slow", "none"):
        with pytest.raises(openai.InternalServerError) as e:
            ask(client, model)
        assert e.value.status_code == 503 and e.value.code == "upstream_unavailable"


def test_streaming_passes_chunks_through_as_they_come(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="hone-tiny",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    arrivals, words, usage = [], [], None
    for chunk in stream:
        arrivals.append(time.perf_counter())
        if chunk.choices:
            words.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    assert "".join(words).strip().endswith("answers for hone-tiny")
    assert usage is not None and usage.total_tokens == 9
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert sum(g > 0.1 for g in gaps) >= 3  # chunks arrived ~0.2 s apart, not all at once at the end


def test_a_stream_cut_by_an_upstream_crash_ends_with_an_error_the_sdk_raises(client: openai.OpenAI) -> None:
    """Before: the client got a truncated body and the SDK returned as if the answer were whole."""
    stream = client.chat.completions.create(model="dying", messages=[{"role": "user", "content": "hi"}], stream=True)
    got = []
    with pytest.raises(openai.APIError, match="stopped while streaming"):
        for chunk in stream:
            got.append(chunk.choices[0].delta.content)
    assert got == ["dying ", "answers "]


def test_stream_metrics_count_every_stream(server: RunningServer, client: openai.OpenAI) -> None:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    def streams() -> float:
        text = httpx.get(server.base_url + "/metrics").text
        return sum(
            s.value
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
            if s.name == "hone_gateway_latency_seconds_count" and s.labels.get("mode") == "stream"
        )

    before = streams()
    for _ in range(3):
        list(
            client.chat.completions.create(model="hone-tiny", messages=[{"role": "user", "content": "hi"}], stream=True)
        )
    deadline = time.time() + 5
    while streams() < before + 3:  # recorded when each relay ends, even if the client hung up first
        assert time.time() < deadline, (before, streams())
        time.sleep(0.05)


def test_completions_and_bad_requests(server: RunningServer, client: openai.OpenAI) -> None:
    r = client.completions.create(model="hone-tiny", prompt="hi")
    assert r.model == "hone-tiny"
    with pytest.raises(openai.APIStatusError) as e:
        ask(client, "hone-tiny", extra_body={"padding": "x" * 200_000})
    assert e.value.status_code == 413
    import httpx

    r = httpx.post(
        server.base_url + "/v1/chat/completions",
        content=b"{nope",
        headers={"Authorization": f"Bearer {client.api_key}", "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(
        server.base_url + "/v1/chat/completions",
        json={"messages": []},
        headers={"Authorization": f"Bearer {client.api_key}"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    r = httpx.post(server.base_url + "/v1/chat/completions", json={"model": "hone-tiny", "messages": []})
    assert r.status_code == 401
