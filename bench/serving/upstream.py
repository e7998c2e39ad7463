"""An upstream that answers every request at once with the same chat completion: what is left
of a request's cost is the gateway's own (and the client's). It runs in its own process."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
from typing import Any

from bench.serving.workload import INSTANT

_CANNED = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": INSTANT,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "word " * 16}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 24, "completion_tokens": 16, "total_tokens": 40},
    }
).encode()
_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(_CANNED),
    _CANNED,
)


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            writer.write(_RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, StopIteration):
        writer.close()


def serve_instant(port: int) -> None:
    """The process's entry point: answer on 127.0.0.1:``port`` until terminated."""

    async def serve() -> None:
        server = await asyncio.start_server(_handle, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    asyncio.run(serve())


def start_instant(port: int) -> Any:
    """The instant upstream in a spawned daemon process (``terminate()`` it when done)."""
    proc = mp.get_context("spawn").Process(target=serve_instant, args=(port,), daemon=True)
    proc.start()
    return proc
