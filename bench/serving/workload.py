"""What every request of the serving bench asks for: the same short chat, greedy, exactly
``max_tokens`` completion tokens (``ignore_eos``) whatever model answers."""

from __future__ import annotations

from typing import Any

BASE = "hone-tiny"
INSTANT = "hone-instant"  # a catalog entry whose upstream answers at once (the gateway's own cost)
PROJECT = "bench"
PROMPT = "Tell me a short story about a blue door and a painter."
CHAT_PATH = "/v1/chat/completions"


def chat_body(model: str, max_tokens: int, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"} if api_key else {}
