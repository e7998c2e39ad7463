"""What the gateway checks or changes in an inference request body before it goes upstream,
one rule per endpoint (``PREPARE``).

Chat and completions streams are made to report their usage (``stream_options.include_usage``)
so every streamed request's tokens are counted; when the client had not asked for it, the relay
drops that extra chunk again, so the client sees the stream it asked for.

The Responses API is stateless here. vLLM keeps a stored response (``store: true``), what
``previous_response_id`` points at, and a ``background`` run in the memory of the one replica
that made it; the gateway spreads requests over replicas and restarts lose that memory, so a
later request would find nothing or, worse, another replica's state. Those parameters get a
400 naming them. ``store`` omitted is accepted and means what vLLM does with it: nothing is
stored (the response says ``"store": false``). Conversations and stored prompts are OpenAI
objects hone does not have; vLLM would ignore them silently, so they are refused too.

Embeddings are answered whole (the API has no stream): ``stream`` is refused rather than
relayed as a stream whose usage nobody reads. Each endpoint is served by one kind of vLLM
(``RUNNERS``, the catalog entry's ``runner``): a chat request to an embedding model, or an
embeddings request to a chat model, is a 400 naming ``model`` instead of vLLM's bare 404 for a
route it did not mount."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.errors import InvalidRequest


@dataclass(frozen=True)
class Prepared:
    changed: bool = False  # the payload was modified: send its new encoding
    strip_usage: bool = False  # the relay drops the usage-only chunk the client did not ask for
    responses: bool = False  # the answer is a Response: the relay puts it in OpenAI's shape


def ask_for_usage(payload: dict[str, Any]) -> Prepared:
    if payload.get("stream") is not True:
        return Prepared()
    options = payload.get("stream_options")
    if options is None:
        options = {}
    if not isinstance(options, dict) or options.get("include_usage") is True:
        return Prepared()  # the client asked for it (or sent something vLLM will refuse)
    payload["stream_options"] = {**options, "include_usage": True}
    return Prepared(changed=True, strip_usage=True)


NOT_STORED = (
    "hone does not store responses: a stored response lives in the memory of the one inference "
    "replica that made it, so a later request could not rely on finding it."
)
# parameter -> (is it set in a way we refuse?, why)
STATEFUL: dict[str, tuple[Callable[[Any], bool], str]] = {
    "store": (
        lambda v: v is True,
        f"{NOT_STORED} Send store: false or leave it out (the response is then not stored).",
    ),
    "previous_response_id": (
        lambda v: v is not None,
        f"{NOT_STORED} Send the earlier turns in `input` instead of previous_response_id.",
    ),
    "background": (
        lambda v: v is True,
        f"{NOT_STORED} Background responses need one; call without background (stream=true to see progress).",
    ),
    "conversation": (
        lambda v: v is not None,
        "hone has no Conversations API; send the earlier turns in `input` instead of conversation.",
    ),
    "prompt": (
        lambda v: v is not None,
        "hone has no stored prompt templates; send the instructions and input themselves instead of prompt.",
    ),
}


def refuse_stateful(payload: dict[str, Any]) -> Prepared:
    for name, (refused, why) in STATEFUL.items():
        if name in payload and refused(payload[name]):
            raise InvalidRequest(why, param=name, code="unsupported_parameter")
    return Prepared(responses=True)


def refuse_stream(payload: dict[str, Any]) -> Prepared:
    if payload.get("stream") is not None:
        raise InvalidRequest(
            "Embeddings are not streamed; leave stream out.", param="stream", code="unsupported_parameter"
        )
    return Prepared()


PREPARE: dict[str, Callable[[dict[str, Any]], Prepared]] = {
    "/v1/chat/completions": ask_for_usage,
    "/v1/completions": ask_for_usage,
    "/v1/responses": refuse_stateful,
    "/v1/embeddings": refuse_stream,
}
# the catalog runner whose vLLM serves each endpoint
RUNNERS: dict[str, str] = {
    "/v1/chat/completions": "generate",
    "/v1/completions": "generate",
    "/v1/responses": "generate",
    "/v1/embeddings": "pooling",
}
_SERVES = {"generate": "chat, completions and responses", "pooling": "embeddings"}


def check_runner(path: str, runner: str, model: str) -> None:
    """A 400 naming ``model`` when its base model's vLLM does not serve ``path``."""
    if RUNNERS[path] != runner:
        raise InvalidRequest(
            f"Model {model} does not serve {path}: it is served for {_SERVES[runner]} only.",
            param="model",
            code="model_not_supported",
        )
