"""An upstream that sends its status line and headers, then hangs up before its body is complete
(a vLLM killed mid-answer): the gateway answers 503 upstream_unavailable with retry-after, never
a 500. The upstream is a FAKE: a raw socket that writes a partial HTTP response and closes."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from service.errors import ServiceUnavailable
from service.gateway.proxy import Gateway

PARTIAL = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 697\r\n\r\n{"id": "chatcmpl-'


@pytest.fixture
def hangs_up() -> Iterator[str]:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(PARTIAL)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


@pytest.mark.anyio
async def test_an_answer_cut_after_its_headers_is_503(hangs_up: str) -> None:
    async with httpx.AsyncClient() as http:
        gateway = Gateway(http)
        with pytest.raises(ServiceUnavailable) as exc:
            await gateway.forward(
                "/v1/chat/completions", b"{}", base="hone-tiny", model="hone-tiny", upstreams=[hangs_up], stream=False
            )
    assert exc.value.code == "upstream_unavailable" and exc.value.headers == {"retry-after": "5"}
    assert "before its answer was complete" in exc.value.message
