"""Finding 10 of issue 11: with several vLLM replicas of a base model, the gateway sees each
replica pod (from the EndpointSlices of the model's headless Service) instead of one ClusterIP
URL, so rendezvous hashing keeps each adapter on one replica as pods come and go.

``FakeDiscoveryV1`` and ``FakeWatch`` are FAKES of the two calls of the official client the
cache makes (``list_namespaced_endpoint_slice`` and a watch stream over it); the slices they
return are shaped like the EndpointSlice controller's (discovery.k8s.io/v1, labels copied from
the Service). The gateway's use of the discovered upstreams and its API key is tested through
the SDK against real HTTP upstreams."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from service.catalog.catalog import BaseModelEntry, Catalog
from service.config import Settings
from service.gateway.config import GatewaySettings
from service.gateway.discovery import EndpointSliceUpstreams, StaticUpstreams, build_upstream_source, slice_upstreams
from service.gateway.routing import preference
from tests.harness.server import serve_app, start_server

ENTRY = BaseModelEntry(name="llama", source="/models/llama", upstreams=["http://hone-vllm-llama.hone.svc:8000"])
ADAPTERS = [f"ft:llama:acme::{i:08d}" for i in range(200)]


def _slice(name: str, base: str, pods: dict[str, dict[str, bool]], rv: str = "1") -> dict[str, Any]:
    """An EndpointSlice of base model ``base``'s headless Service: ``pods`` maps address -> conditions."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "resourceVersion": rv,
            "labels": {
                "app.kubernetes.io/name": "hone-vllm",
                "hone.dev/base-model": base,
                "kubernetes.io/service-name": f"hone-vllm-{base}-pods",
                "service.kubernetes.io/headless": "",
            },
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}],
        "endpoints": [{"addresses": [a], "conditions": c} for a, c in pods.items()],
    }


READY = {"ready": True, "serving": True, "terminating": False}


class FakeDiscoveryV1:
    """A FAKE DiscoveryV1Api: only the list the cache calls (the watch stream is FakeWatch)."""

    def __init__(self, slices: list[dict[str, Any]], version: str = "10") -> None:
        self.slices, self.version, self.lists = slices, version, 0
        self.api_client = SimpleNamespace(sanitize_for_serialization=lambda o: o)

    def list_namespaced_endpoint_slice(self, namespace: str, **kw: Any) -> Any:
        self.lists += 1
        self.selector = kw.get("label_selector")
        return SimpleNamespace(items=list(self.slices), metadata=SimpleNamespace(resource_version=self.version))


class FakeWatch:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events

    def stream(self, fn: Any, namespace: str, **kw: Any) -> Iterator[dict[str, Any]]:
        yield from self.events


def _cache(api: FakeDiscoveryV1) -> EndpointSliceUpstreams:
    g = GatewaySettings(discovery="kubernetes")
    return EndpointSliceUpstreams(api, "hone", g.selector, g.model_label, g.port_name)


def test_only_ready_endpoints_of_the_port_named_http_are_upstreams() -> None:
    raw = _slice(
        "s",
        "llama",
        {
            "10.0.0.1": READY,
            "10.0.0.2": {"ready": False, "serving": False},
            "10.0.0.3": {"ready": False, "serving": True, "terminating": True},
            "fd00::4": READY,
        },
    )
    assert slice_upstreams(raw, "hone.dev/base-model", "http") == (
        "llama",
        ["http://10.0.0.1:8000", "http://[fd00::4]:8000"],
    )
    assert slice_upstreams(raw, "hone.dev/base-model", "metrics") == ("llama", [])


def test_pods_coming_and_going_move_only_their_own_adapters() -> None:
    pods = {f"10.0.0.{i}": READY for i in (1, 2, 3)}
    api = FakeDiscoveryV1([_slice("llama-a", "llama", pods), _slice("other-a", "other", {"10.9.9.9": READY})])
    cache = _cache(api)
    assert cache.upstreams(ENTRY) == ENTRY.upstreams  # nothing discovered yet: the static URL
    cache.relist()
    assert api.selector == "app.kubernetes.io/name=hone-vllm,service.kubernetes.io/headless"
    three = cache.upstreams(ENTRY)
    assert three == ["http://10.0.0.1:8000", "http://10.0.0.2:8000", "http://10.0.0.3:8000"]
    before = {a: preference(three, a)[0] for a in ADAPTERS}
    assert len(set(before.values())) == 3  # the adapters spread over all replicas

    # A fourth replica becomes ready (a second slice of the same Service): only the adapters
    # that now prefer it move; every other adapter stays where it is warm.
    cache.watch_once(FakeWatch([{"type": "ADDED", "object": _slice("llama-b", "llama", {"10.0.0.4": READY}, "11")}]))
    four = cache.upstreams(ENTRY)
    after = {a: preference(four, a)[0] for a in ADAPTERS}
    moved = {a for a in ADAPTERS if after[a] != before[a]}
    assert moved and all(after[a] == "http://10.0.0.4:8000" for a in moved)

    # Replica 2 goes away (not ready while terminating): only its adapters move.
    going = dict(pods, **{"10.0.0.2": {"ready": False, "terminating": True}})
    cache.watch_once(FakeWatch([{"type": "MODIFIED", "object": _slice("llama-a", "llama", going, "12")}]))
    three_again = cache.upstreams(ENTRY)
    assert "http://10.0.0.2:8000" not in three_again
    final = {a: preference(three_again, a)[0] for a in ADAPTERS}
    assert {a for a in ADAPTERS if final[a] != after[a]} == {a for a in ADAPTERS if after[a] == "http://10.0.0.2:8000"}

    cache.watch_once(FakeWatch([{"type": "DELETED", "object": _slice("llama-b", "llama", {}, "13")}]))
    assert cache.upstreams(ENTRY) == ["http://10.0.0.1:8000", "http://10.0.0.3:8000"]
    assert cache.resource_version == "13"

    # 410 Gone: the next watch lists again, dropping what went away meanwhile.
    cache.watch_once(FakeWatch([{"type": "ERROR", "object": {"code": 410, "message": "too old"}}]))
    api.slices = [_slice("llama-a", "llama", {"10.0.0.5": READY})]
    cache.watch_once(FakeWatch([]))
    assert api.lists == 2 and cache.upstreams(ENTRY) == ["http://10.0.0.5:8000"]


def test_the_setting_selects_the_source() -> None:
    assert isinstance(build_upstream_source(Settings()), StaticUpstreams)
    with pytest.raises(ValueError, match="unknown upstream discovery"):
        GatewaySettings(discovery="consul")


def _keyed_upstream(name: str, key: str) -> FastAPI:
    """A real HTTP upstream that, like vLLM with VLLM_API_KEY, answers 401 on /v1 without the key."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> Any:
        if request.headers.get("authorization") != f"Bearer {key}":
            return JSONResponse({"error": "Unauthorized"}, status_code=401)
        body = await request.json()
        return {
            "id": "chatcmpl-x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": name}, "finish_reason": "stop"}],
        }

    return app


class ListedSource:
    """The discovered replicas, as the EndpointSlice cache hands them to the gateway."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls

    def upstreams(self, entry: BaseModelEntry) -> list[str]:
        return self.urls

    def close(self) -> None:
        pass


def test_the_gateway_sends_the_key_and_keeps_each_model_on_its_replica(tmp_path: Path, tiny_model_dir: Path) -> None:
    served = [serve_app(_keyed_upstream(f"replica-{i}", "k3y")) for i in range(3)]
    urls = [u for u, _ in served]
    catalog = Catalog([BaseModelEntry(name="hone-tiny", source=str(tiny_model_dir))])  # no static upstreams
    server = start_server(tmp_path, catalog, gateway={"upstream_api_key": "k3y"})
    server.ctx.gateway.source = ListedSource(urls)
    try:
        client = openai.OpenAI(base_url=server.v1, api_key=server.new_key("acme"), max_retries=0)
        messages: Any = [{"role": "user", "content": "hi"}]
        answer = client.chat.completions.create(model="hone-tiny", messages=messages)
        assert answer.choices[0].message.content == f"replica-{urls.index(preference(urls, 'hone-tiny')[0])}"
        server.ctx.gateway.headers["authorization"] = "Bearer wrong"  # vLLM refuses a wrong key...
        with pytest.raises(openai.InternalServerError) as refused:  # ...which is the server's fault, not the caller's
            client.chat.completions.create(model="hone-tiny", messages=messages)
        assert refused.value.status_code == 503 and "HONE_GATEWAY__UPSTREAM_API_KEY" in refused.value.message
    finally:
        server.stop()
        for _, s in served:
            s.should_exit = True
