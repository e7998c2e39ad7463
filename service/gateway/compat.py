"""vLLM's Response objects in the shape OpenAI gives them, where vLLM (0.32) differs only by
leaving something out that has one honest value here:

- ``error`` is absent; OpenAI sends ``"error": null`` on every response that did not fail
  (the spec requires the member). Added as null unless the status is ``failed``.
- ``text`` is null when the request set no text options; OpenAI echoes its default,
  ``{"format": {"type": "text"}}``, which is what vLLM did.
- an ``output_text`` part has ``"logprobs": null`` when none were asked for; OpenAI sends
  ``[]`` (the spec requires an array).
- ``store`` is absent; OpenAI echoes it. hone never stores a response (service.gateway.requests
  refuses ``store: true``), so it says ``"store": false``.

Applied to a non-streamed response and to the stream events that carry a response, an output
item or a content part; every other event (the text deltas) passes untouched."""

from __future__ import annotations

import re
from typing import Any

# Marks a streamed event this module may change (others are not parsed). No JSON string holds
# an unescaped quote, so text the model wrote never matches.
MARKER = re.compile(rb'"(?:response|item|part)"\s*:\s*\{')


def normalise_response_doc(doc: Any) -> bool:
    """Normalise a Response, or a stream event holding one (or an item or part), in place;
    True when something changed."""
    if not isinstance(doc, dict):
        return False
    changed = False
    if doc.get("object") == "response":
        changed |= _response(doc)
    for key, fix in (("response", _response), ("item", _item), ("part", _part)):
        if isinstance(doc.get(key), dict):
            changed |= fix(doc[key])
    return changed


def _response(response: dict[str, Any]) -> bool:
    changed = False
    if "error" not in response and response.get("status") != "failed":
        response["error"] = None
        changed = True
    if "store" not in response:
        response["store"] = False
        changed = True
    if "text" in response and response["text"] is None:
        response["text"] = {"format": {"type": "text"}}
        changed = True
    for item in response.get("output") or []:
        if isinstance(item, dict):
            changed |= _item(item)
    return changed


def _item(item: dict[str, Any]) -> bool:
    changed = False
    if item.get("type") == "message":
        for part in item.get("content") or []:
            if isinstance(part, dict):
                changed |= _part(part)
    return changed


def _part(part: dict[str, Any]) -> bool:
    if part.get("type") == "output_text" and "logprobs" in part and part["logprobs"] is None:
        part["logprobs"] = []
        return True
    return False
