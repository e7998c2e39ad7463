"""Forwards one request to the first healthy upstream in the model's rendezvous order.

Streaming responses are passed through chunk by chunk as vLLM sends them (no buffering, no
re-encoding); errors vLLM answers with are passed through in the OpenAI envelope; an upstream
that cannot be reached, times out or refuses the gateway's API key is skipped, and when none is
left the caller gets 503 (never the upstream's 401: the caller's own key was fine).

Every relayed answer (200) counts as one model request in the project's inference usage, with
the tokens the upstream reported: the JSON body's ``usage``, or in a stream the event that
carries it (chat and completions: the ``stream_options.include_usage`` chunk, which the route
asks for and, when the client did not, the relay drops again; responses: ``response.completed``
and the other terminal events). Streams are cut into whole SSE events as they pass; an event is
held only until its own end has arrived."""

from __future__ import annotations

import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
from prometheus_client import Counter
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from service.errors import ServiceUnavailable
from service.gateway.compat import MARKER, normalise_response_doc
from service.gateway.discovery import StaticUpstreams, UpstreamSource
from service.gateway.routing import preference
from service.gateway.usage import Tokens, UsageRecorder, tokens_of

log = logging.getLogger(__name__)
UPSTREAM_REFUSED = (401, 403)  # vLLM's answer to a missing or wrong API key
WARM_ENTRIES = 65536  # (upstream, adapter) pairs remembered for the cold-load metric
Observer = Callable[[str, str, int, float, dict | None], None]
USAGE_MARKER = re.compile(rb'"usage"\s*:\s*\{')  # no JSON string holds it unescaped: a cheap test before parsing
MAX_EVENT_BYTES = 16 << 20  # an SSE "event" longer than this is passed on unread (no usage taken from it)
# Responses stream events whose ``response`` carries the final usage.
TERMINAL_RESPONSE_EVENTS = ("response.completed", "response.incomplete", "response.failed")


@dataclass(frozen=True)
class Relay:
    """Who the answer is for and how to read it: usage is counted for ``project_id`` under
    ``model``; ``strip_usage``: the route added ``include_usage`` to a stream, so the chunk that
    carries only the usage is dropped before the client sees it; ``responses``: the answer is
    a Response (or its stream events), put in OpenAI's shape by service.gateway.compat."""

    project_id: str
    model: str
    strip_usage: bool = False
    responses: bool = False


def upstream_unavailable(message: str) -> ServiceUnavailable:
    """503 ``upstream_unavailable``: no inference server could answer; clients retry after 5 s."""
    return ServiceUnavailable(message, code="upstream_unavailable", headers={"retry-after": "5"})


class Gateway:
    def __init__(
        self,
        client: httpx.AsyncClient,
        observe: Observer | None = None,
        cold_load: Counter | None = None,
        *,
        source: UpstreamSource | None = None,
        api_key: str | None = None,
        usage: UsageRecorder | None = None,
    ) -> None:
        """``source``: where each base model's replicas are (default: the catalog's ``upstreams``);
        ``api_key``: the key the upstreams require (vLLM's ``VLLM_API_KEY``), sent as a bearer token;
        ``usage``: where each relayed request's tokens are counted (None: nowhere)."""
        self.client = client
        self.observe = observe or (lambda *a: None)
        self.cold_load = cold_load
        self.source: UpstreamSource = source or StaticUpstreams()
        self.usage = usage
        self.headers = {"content-type": "application/json"}
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"
        self._warm: OrderedDict[tuple[str, str], None] = OrderedDict()  # bounded: oldest forgotten

    async def forward(
        self,
        path: str,
        body: bytes,
        *,
        base: str,
        model: str,
        upstreams: list[str],
        stream: bool,
        relay: Relay | None = None,
    ) -> Response:
        if not upstreams:
            raise upstream_unavailable(f"No inference server is running for base model {base}.")
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
            return await self._relay(upstream_response, base, stream, started, relay)
        raise upstream_unavailable(f"The inference server for base model {base} is unavailable: {last_error}.")

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

    def _record(self, relay: Relay | None, tokens: Tokens | None) -> None:
        if relay is not None and self.usage is not None:
            self.usage.add(relay.project_id, relay.model, tokens)

    async def _relay(
        self, up: httpx.Response, base: str, stream: bool, started: float, relay: Relay | None
    ) -> Response:
        if stream and up.status_code == 200:
            return StreamingResponse(
                self._chunks(up, base, started, relay),
                status_code=200,
                media_type=up.headers.get("content-type", "text/event-stream"),
                background=BackgroundTask(up.aclose),
            )
        try:
            content = await up.aread()
        except httpx.TransportError as e:  # it answered, then went away mid-body (e.g. killed)
            raise upstream_unavailable(
                f"The inference server for base model {base} closed the connection before its answer "
                f"was complete ({type(e).__name__})."
            ) from None
        finally:
            await up.aclose()
        tokens = None
        if up.status_code == 200:
            try:
                doc = json.loads(content)
            except ValueError:
                doc = None
            tokens = tokens_of(doc.get("usage")) if isinstance(doc, dict) else None
            self._record(relay, tokens)
            if relay is not None and relay.responses and normalise_response_doc(doc):
                content = json.dumps(doc, ensure_ascii=False).encode()
        else:
            content = _as_envelope(content, up.status_code)
        usage = tokens.as_chat_usage() if tokens else None
        self.observe(base, "stream" if stream else "unary", up.status_code, time.perf_counter() - started, usage)
        return Response(content, status_code=up.status_code, media_type="application/json")

    async def _chunks(self, up: httpx.Response, base: str, started: float, relay: Relay | None) -> AsyncIterator[bytes]:
        tokens: Tokens | None = None
        status = 200
        events = SseEvents()
        strip = relay is not None and relay.strip_usage
        markers = (USAGE_MARKER, MARKER) if relay is not None and relay.responses else (USAGE_MARKER,)
        try:
            async for chunk in up.aiter_raw():
                whole = events.feed(chunk)
                if not whole:
                    continue
                if not any(m.search(whole) for m in markers):  # the common case: nothing to read, pass it on
                    yield whole
                    continue
                out = []
                for event in split_events(whole):
                    if not any(m.search(event) for m in markers):
                        out.append(event)
                        continue
                    seen = _read_event(event, normalise=len(markers) > 1)
                    tokens = seen.tokens or tokens
                    if not (strip and seen.usage_only):
                        out.append(seen.event)
                if out:
                    yield b"".join(out)
            if rest := events.rest():
                yield rest
        except httpx.HTTPError as e:  # the upstream died mid-stream: end with an error event, not a cut body
            status = 502
            log.warning("gateway: the %s stream from the upstream broke off (%s)", base, type(e).__name__)
            if rest := events.rest():
                yield rest
            yield STREAM_BROKEN
        finally:  # also when the client stops reading after [DONE] (the SDK closes the stream at once)
            self._record(relay, tokens)
            usage = tokens.as_chat_usage() if tokens else None
            self.observe(base, "stream", status, time.perf_counter() - started, usage)


class SseEvents:
    """Cuts a byte stream into whole server-sent events: ``feed`` returns the complete events
    received so far (each with its blank-line end), keeping a partial one until it ends."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> bytes:
        self._buf += chunk
        end = self._buf.rfind(b"\n\n")
        if end < 0:
            if len(self._buf) > MAX_EVENT_BYTES:  # not SSE as we know it: pass it on unread
                return self.rest()
            return b""
        whole, self._buf = self._buf[: end + 2], self._buf[end + 2 :]
        return whole

    def rest(self) -> bytes:
        rest, self._buf = self._buf, b""
        return rest


def split_events(whole: bytes) -> list[bytes]:
    return [e + b"\n\n" for e in whole.split(b"\n\n")[:-1]]


@dataclass(frozen=True)
class SeenEvent:
    event: bytes  # as it goes on to the client (re-encoded when normalised)
    tokens: Tokens | None = None  # the usage it reports
    usage_only: bool = False  # a chat/completions chunk with nothing but the usage (``choices: []``)


def _read_event(event: bytes, *, normalise: bool = False) -> SeenEvent:
    """What an SSE event reports; with ``normalise``, a Responses event in OpenAI's shape."""
    lines = event[:-2].split(b"\n")
    for i, line in enumerate(lines):
        if not line.startswith(b"data: {"):
            continue
        try:
            doc = json.loads(line[6:])
        except ValueError:
            return SeenEvent(event)
        if not isinstance(doc, dict):
            return SeenEvent(event)
        tokens, usage_only = None, False
        if isinstance(doc.get("usage"), dict):
            tokens, usage_only = tokens_of(doc["usage"]), doc.get("choices") == []
        elif doc.get("type") in TERMINAL_RESPONSE_EVENTS and isinstance(doc.get("response"), dict):
            tokens = tokens_of(doc["response"].get("usage"))
        if normalise and normalise_response_doc(doc):
            lines[i] = b"data: " + json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
            event = b"\n".join(lines) + b"\n\n"
        return SeenEvent(event, tokens, usage_only)
    return SeenEvent(event)


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
