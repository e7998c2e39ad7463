"""A FAKE inference upstream for gateway tests: a tiny real HTTP server that answers
/v1/chat/completions, /v1/completions and /v1/responses like vLLM's OpenAI server would in shape (it echoes
which upstream answered and for which model), streams SSE chunks with delays between them,
and can be told to hang. The end-to-end tests against real vLLM are in tests/e2e."""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


def make_upstream(
    name: str, *, chunk_delay_s: float = 0.2, hang_s: float = 0.0, break_after_chunks: int | None = None
) -> FastAPI:
    """``break_after_chunks``: a stream is cut off after that many chunks, the connection
    dropped mid-body, as when the inference server dies while streaming."""
    app = FastAPI()
    app.state.calls = []

    @app.post("/v1/chat/completions")
    @app.post("/v1/completions")
    async def complete(request: Request):  # type: ignore[no-untyped-def]
        body = await request.json()
        app.state.calls.append(body["model"])
        if hang_s:
            await asyncio.sleep(hang_s)
        if body["model"].endswith("nosuch"):
            return JSONResponse(
                {
                    "error": {
                        "message": f"The model `{body['model']}` does not exist.",
                        "type": "NotFoundError",
                        "param": "model",
                        "code": 404,
                    }
                },
                status_code=404,
            )
        text = f"{name} answers for {body['model']}"
        base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            return {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
            }

        async def events():  # type: ignore[no-untyped-def]
            for i, word in enumerate(text.split()):
                if break_after_chunks is not None and i == break_after_chunks:
                    raise ConnectionAbortedError("the fake upstream dies mid-stream")
                chunk = {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [
                        {"index": 0, "delta": {"content": word + " "}, "logprobs": None, "finish_reason": None}
                    ],
                }
                yield f"data: {json.dumps(chunk)}\n\n".encode()
                await asyncio.sleep(chunk_delay_s)
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
                }
                yield f"data: {json.dumps(usage)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/responses")
    async def respond(request: Request):  # type: ignore[no-untyped-def]
        body = await request.json()
        app.state.calls.append(body["model"])
        text = f"{name} answers for {body['model']}"
        response = {
            "id": "resp_fake",
            "object": "response",
            "created_at": int(time.time()),
            "model": body["model"],
            "status": "completed",
            # as vLLM 0.32 sends it: no "error" nor "store", "text": null, "logprobs": null
            "incomplete_details": None,
            "instructions": None,
            "metadata": None,
            "parallel_tool_calls": True,
            "temperature": 1.0,
            "tool_choice": "none",
            "tools": [],
            "top_p": 1.0,
            "text": None,
            "user": None,
            "output": [
                {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": None}],
                }
            ],
            "usage": {
                "input_tokens": 6,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": 4,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 10,
            },
        }
        if not body.get("stream"):
            return response

        async def events():  # type: ignore[no-untyped-def]
            # vLLM's event sequence, with its omissions (see the non-streamed response above)
            created = {**response, "status": "in_progress", "output": [], "usage": None}
            item = {**response["output"][0], "status": "in_progress", "content": []}
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            at = {"item_id": item["id"], "output_index": 0, "content_index": 0}
            script = [
                {"type": "response.created", "response": created},
                {"type": "response.in_progress", "response": created},
                {"type": "response.output_item.added", "output_index": 0, "item": item},
                {"type": "response.content_part.added", **at, "part": part},
            ]
            script += [
                {"type": "response.output_text.delta", **at, "delta": word + " ", "logprobs": []}
                for word in text.split()
            ]
            script += [
                {"type": "response.output_text.done", **at, "text": text, "logprobs": []},
                {"type": "response.content_part.done", **at, "part": response["output"][0]["content"][0]},
                {"type": "response.output_item.done", "output_index": 0, "item": response["output"][0]},
                {"type": "response.completed", "response": response},
            ]
            for n, event in enumerate(script):
                yield _event(event["type"], {**event, "sequence_number": n})
                if event["type"] == "response.output_text.delta":
                    await asyncio.sleep(chunk_delay_s)

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def _event(kind: str, doc: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(doc)}\n\n".encode()
