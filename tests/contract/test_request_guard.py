"""Bodies are authenticated before they are read, and capped on every JSON route.

A client announces a 300 MB body and sends none of it: the server must answer from the headers
alone (401 without a valid key or report token, 413 past the route's limit), where it used to
wait for and parse the whole body first (a 300 MB unauthenticated POST grew the server by
~900 MB). Raw sockets, so that nothing but the headers is ever sent."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

HUGE = 300_000_000


def _exchange(base_url: str, request: bytes, timeout: float = 10) -> tuple[int, dict[str, Any]]:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("path", ["/v1/fine_tuning/jobs", "/v1/chat/completions", "/internal/v1/jobs/ftjob-x/events"])
@pytest.mark.parametrize("key", [None, "sk-hone-wrong"])
def test_no_valid_credential_is_401_before_the_body(server, path: str, key: str | None) -> None:  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "application/json", "Content-Length": str(HUGE)}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    status, body = _exchange(server.base_url, _head(path, headers))
    assert status == 401 and set(body["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("path", ["/v1/fine_tuning/jobs", "/v1/chat/completions", "/v1/fine_tuning/jobs/x/cancel"])
def test_a_body_past_the_limit_is_413_before_it_is_read(server, api_key: str, path: str) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json", "Content-Length": str(HUGE)}
    status, body = _exchange(server.base_url, _head(path, headers))
    assert status == 413 and body["error"]["code"] == "request_too_large"


def test_a_chunked_body_is_cut_off_at_the_limit(server, api_key: str) -> None:  # type: ignore[no-untyped-def]
    limit = server.settings.max_json_bytes
    chunk = b"x" * 65536
    head = _head(
        "/v1/fine_tuning/jobs",
        {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )
    n = limit // len(chunk) + 2
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(n))  # never terminated
    status, err = _exchange(server.base_url, head + body)
    assert status == 413 and str(limit) in err["error"]["message"]
