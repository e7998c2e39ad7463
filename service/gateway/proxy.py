"""Forwards one request to the first healthy upstream in the model's rendezvous order.

Streaming responses are passed through chunk by chunk as vLLM sends them (no buffering, no
re-encoding); errors vLLM answers with are passed through in the OpenAI envelope; an upstream
that cannot be reached, times out or refuses the gateway's API key is skipped, and when none is
left the caller gets 503 (never the upstream's 401: the caller's own key was fine)."""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable

import httpx
from prometheus_client import Counter
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from service.errors import ServiceUnavailable
from service.gateway.discovery import StaticUpstreams, UpstreamSource
from service.gateway.routing import preference

log = logging.getLogger(__name__)
UPSTREAM_REFUSED = (401, 403)  # vLLM's answer to a missing or wrong API key
WARM_ENTRIES = 65536  # (upstream, adapter) pairs remembered for the cold-load metric
Observer = Callable[[str, str, int, float, dict | None], None]


class Gateway:
    def __init__(
        self,
        client: httpx.AsyncClient,
        observe: Observer | None = None,
        cold_load: Counter | None = None,
        *,
        source: UpstreamSource | None = None,
        api_key: str | None = None,
    ) -> None:
        """``source``: where each base model's replicas are (default: the catalog's ``upstreams``);
        ``api_key``: the key the upstreams require (vLLM's ``VLLM_API_KEY``), sent as a bearer token."""
        self.client = client
        self.observe = observe or (lambda *a: None)
        self.cold_load = cold_load
        self.source: UpstreamSource = source or StaticUpstreams()
        self.headers = {"content-type": "application/json"}
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"
        self._warm: OrderedDict[tuple[str, str], None] = OrderedDict()  # bounded: oldest forgotten

    async def forward(
        self, path: str, body: bytes, *, base: str, model: str, upstreams: list[str], stream: bool
    ) -> Response:
        if not upstreams:
            raise ServiceUnavailable(
                f"No inference server is running for base model {base}.",
                code="upstream_unavailable",
                headers={"retry-after": "5"},
            )
        started = time.perf_counter()
        last_error = ""
        for upstream in preference(upstreams, model):
            request = self.client.build_request("POST", upstream.rstrip("/") + path, content=body, headers=self.headers)
            try:
                upstream_response = await self.client.send(request, stream=True)
            except httpx.TimeoutException as e:
                last_error = f"{upstream} timed out ({type(e).__name__})"
                log.warning("gateway: %s", last_error)
                continue
            except httpx.TransportError as e:
                last_error = f"{upstream} unreachable ({type(e).__name__})"
                log.warning("gateway: %s", last_error)
                continue
            if upstream_response.status_code in UPSTREAM_REFUSED:  # the key, not the caller: a deployment fault
                await upstream_response.aclose()
                last_error = (
                    f"{upstream} refused the gateway ({upstream_response.status_code}): "
                    "HONE_GATEWAY__UPSTREAM_API_KEY does not match the server's VLLM_API_KEY"
                )
                log.error("gateway: %s", last_error)
                continue
            if model != base and upstream_response.status_code == 200:
                self._note_served(upstream, model, base)
            return await self._relay(upstream_response, base, stream, started)
        raise ServiceUnavailable(
            f"The inference server for base model {base} is unavailable: {last_error}.",
            code="upstream_unavailable",
            headers={"retry-after": "5"},
        )

    def _note_served(self, upstream: str, model: str, base: str) -> None:
        key = (upstream, model)
        if key in self._warm:
            self._warm.move_to_end(key)
            return
        self._warm[key] = None
        if len(self._warm) > WARM_ENTRIES:
            self._warm.popitem(last=False)
        if self.cold_load is not None:
            self.cold_load.labels(base).inc()

    async def _relay(self, up: httpx.Response, base: str, stream: bool, started: float) -> Response:
        if stream and up.status_code == 200:
            return StreamingResponse(
                self._chunks(up, base, started),
                status_code=200,
                media_type=up.headers.get("content-type", "text/event-stream"),
                background=BackgroundTask(up.aclose),
            )
        try:
            content = await up.aread()
        finally:
            await up.aclose()
        usage = None
        if up.status_code == 200:
            try:
                usage = json.loads(content).get("usage")
            except ValueError:
                pass
        else:
            content = _as_envelope(content, up.status_code)
        self.observe(base, "stream" if stream else "unary", up.status_code, time.perf_counter() - started, usage)
        return Response(content, status_code=up.status_code, media_type="application/json")

    async def _chunks(self, up: httpx.Response, base: str, started: float) -> AsyncIterator[bytes]:
        usage, status = None, 200
        try:
            async for chunk in up.aiter_raw():
                if b'"usage":{' in chunk:  # the include_usage chunk; count tokens without re-parsing every chunk
                    usage = _last_usage(chunk) or usage
                yield chunk
        except httpx.HTTPError as e:  # the upstream died mid-stream: end with an error event, not a cut body
            status = 502
            log.warning("gateway: the %s stream from the upstream broke off (%s)", base, type(e).__name__)
            yield STREAM_BROKEN
        finally:  # also when the client stops reading after [DONE] (the SDK closes the stream at once)
            self.observe(base, "stream", status, time.perf_counter() - started, usage)


# An SSE event the OpenAI SDKs raise as an APIError (a data payload with an "error" member).
STREAM_BROKEN = (
    b"data: "
    + json.dumps(
        {
            "error": {
                "message": "The inference server stopped while streaming this response; retry the request.",
                "type": "server_error",
                "param": None,
                "code": "upstream_stream_broken",
            }
        }
    ).encode()
    + b"\n\n"
)


def _last_usage(chunk: bytes) -> dict | None:
    for line in reversed(chunk.split(b"\n")):
        if line.startswith(b"data: {") and b'"usage":{' in line:
            try:
                return json.loads(line[6:]).get("usage")
            except ValueError:
                return None
    return None


def _as_envelope(content: bytes, status: int) -> bytes:
    """vLLM's error bodies as the OpenAI envelope (newer vLLM already sends it)."""
    try:
        doc = json.loads(content)
    except ValueError:
        doc = {"message": content.decode("utf-8", "replace")[:2000]}
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        err = doc["error"]
    else:
        err = doc if isinstance(doc, dict) else {"message": str(doc)}
    return json.dumps(
        {
            "error": {
                "message": str(err.get("message", "The inference server returned an error.")),
                "type": "invalid_request_error" if status < 500 else "server_error",
                "param": err.get("param"),
                "code": "model_not_found" if status == 404 else None,
            }
        }
    ).encode()
