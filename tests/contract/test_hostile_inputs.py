"""Findings of a hostile-input pass, each pinned by a test that failed before its fix: no 500s
and no oversized echoes for NUL bytes in URLs, JSON nested past Python's recursion limit, huge
model names, and a database that stops answering (503 with retry-after, then recovery)."""

from __future__ import annotations

import httpx
import openai
import pytest

from service.db.session import Database


def _post(server, key: str, path: str, content: bytes) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.post(
        server.base_url + path,
        content=content,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )


@pytest.mark.parametrize(
    "path",
    [
        "/v1/files/file-abc%00def",
        "/v1/fine_tuning/jobs/ftjob-x%00y",
        "/v1/fine_tuning/jobs?after=ftjob-%00",
        "/v1/models/ft:a%00b",
    ],
)
def test_a_nul_in_the_url_is_400(server, api_key: str, path: str) -> None:  # type: ignore[no-untyped-def]
    r = httpx.get(server.base_url + path, headers={"Authorization": f"Bearer {api_key}"})
    assert r.status_code == 400 and "NUL" in r.json()["error"]["message"], r.text


def test_deeply_nested_json_is_400(server, api_key: str) -> None:  # type: ignore[no-untyped-def]
    depth = 100_000
    body = b'{"model": "hone-tiny", "messages": ' + b"[" * depth + b"]" * depth + b"}"
    r = _post(server, api_key, "/v1/chat/completions", body)
    assert r.status_code == 400 and "nested too deeply" in r.json()["error"]["message"], r.text
    r = _post(server, api_key, "/v1/fine_tuning/jobs", b'{"model": ' + b"[" * depth + b"]" * depth + b"}")
    assert r.status_code == 400, r.text


def test_huge_names_are_not_echoed_whole(client: openai.OpenAI) -> None:
    name = "ft:hone-tiny:acme::" + "x" * 8000
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve(name)
    assert len(e.value.message) < 300 and e.value.message.count("x") < 200
    with pytest.raises(openai.NotFoundError) as e:
        client.fine_tuning.jobs.retrieve("ftjob-" + "y" * 5000)
    assert len(e.value.message) < 300


def test_a_database_outage_is_503_with_retry_after_then_recovers(server, api_key: str) -> None:  # type: ignore[no-untyped-def]
    """Point the running server at a database nothing listens on (port 1), as an outage looks
    to it; then back. Every request in between is a 503 the SDK retries, never a 500."""
    ctx = server.ctx
    real = ctx.db
    ctx.db = Database("postgresql+psycopg://hone@127.0.0.1:1/nowhere?connect_timeout=2")
    try:
        headers = {"Authorization": f"Bearer {api_key}"}
        for method, path in (
            ("GET", "/v1/files"),
            ("GET", "/v1/fine_tuning/jobs"),
            ("POST", "/v1/fine_tuning/jobs"),
            ("GET", "/readyz"),
        ):
            create = {"model": "hone-tiny", "training_file": "file-abc"}  # a valid body: only the database can answer
            r = httpx.request(
                method, server.base_url + path, headers=headers, json=create if method == "POST" else None
            )
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert r.headers["retry-after"] == "5" and r.json()["error"]["code"] == "database_unavailable"
    finally:
        ctx.db.dispose()
        ctx.db = real
    assert httpx.get(server.base_url + "/readyz").status_code == 200
    assert httpx.get(server.base_url + "/v1/files", headers={"Authorization": f"Bearer {api_key}"}).status_code == 200


def test_readyz_reports_what_is_not_ready(server) -> None:  # type: ignore[no-untyped-def]
    """hone up registers its supervised vLLM servers as readiness checks: one that is restarting
    makes /readyz a 503 that says so, until it serves again."""
    restarting = {"state": "restarting"}
    server.ctx.readiness.append(
        lambda: None if restarting["state"] == "healthy" else "vLLM for hone-tiny is restarting"
    )
    try:
        r = httpx.get(server.base_url + "/readyz")
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert r.json()["error"]["message"] == "Not ready: vLLM for hone-tiny is restarting"
        restarting["state"] = "healthy"
        assert httpx.get(server.base_url + "/readyz").status_code == 200
    finally:
        server.ctx.readiness.clear()


def test_a_nul_inside_a_json_body_is_400_not_500(client: openai.OpenAI) -> None:
    """PostgreSQL cannot store or compare a NUL in a string (a DataError): a 400, not a 500."""
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(model="hone-tiny", training_file="file-\x00abc")
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(model="hone-\x00tiny", training_file="file-abc")
