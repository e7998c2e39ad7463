"""client.files through the official SDK (sync and async) against a real server."""

from __future__ import annotations

import hashlib
import io

import httpx
import openai
import pytest

from tests.contract.helpers import chat_line, jsonl


def test_create_retrieve_content_delete(client: openai.OpenAI, spec_checker) -> None:  # type: ignore[no-untyped-def]
    data = jsonl([chat_line(i) for i in range(12)])
    f = client.files.create(file=("my data.jsonl", io.BytesIO(data)), purpose="fine-tune")
    assert f.id.startswith("file-") and len(f.id) == 29
    assert (f.object, f.bytes, f.filename, f.purpose, f.status) == (
        "file",
        len(data),
        "my data.jsonl",
        "fine-tune",
        "processed",
    )
    assert f.expires_at is None
    assert client.files.wait_for_processing(f.id, poll_interval=0.1).status == "processed"
    got = client.files.retrieve(f.id)
    assert got.model_dump() == f.model_dump()
    assert hashlib.sha256(client.files.content(f.id).read()).hexdigest() == hashlib.sha256(data).hexdigest()
    deleted = client.files.delete(f.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (f.id, "file", True)
    for call in (client.files.retrieve, client.files.content, client.files.delete):
        with pytest.raises(openai.NotFoundError) as e:
            call(f.id)
        assert e.value.body["message"] == f"No such File object: {f.id}"  # type: ignore[index]
        assert e.value.body["param"] == "id"  # type: ignore[index]
    assert spec_checker.checked >= 4


def test_list_filters_orders_and_pages(client: openai.OpenAI) -> None:
    ids = [client.files.create(file=(f"n{i}.txt", b"not jsonl at all"), purpose="user_data").id for i in range(5)]
    listed = [f.id for f in client.files.list(purpose="user_data")]
    assert listed[:5] == ids[::-1]  # newest first by default
    asc = [f.id for f in client.files.list(purpose="user_data", order="asc")]
    assert asc[-5:] == ids
    page = client.files.list(purpose="user_data", limit=2)
    assert len(page.data) == 2 and page.has_more
    # openai-python's auto-pagination is iterating the page (it has no auto_paging_iter()).
    assert [f.id for f in page] == listed == ids[::-1]
    assert [len(p.data) for p in page.iter_pages()] == [2, 2, 1]
    last = client.files.list(purpose="user_data", limit=2, after=listed[-2])
    assert [f.id for f in last.data] == [listed[-1]] and last.has_more is False
    assert all(f.purpose == "user_data" for f in client.files.list(purpose="user_data"))


def test_expires_after_and_batch_default(client: openai.OpenAI) -> None:
    f = client.files.create(
        file=("a.jsonl", b"{}\n"), purpose="fine-tune", expires_after={"anchor": "created_at", "seconds": 3600}
    )
    assert f.expires_at == f.created_at + 3600
    b = client.files.create(file=("b.jsonl", b"{}\n"), purpose="batch")
    assert b.expires_at == b.created_at + 30 * 24 * 3600
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(
            file=("c.jsonl", b"{}\n"), purpose="fine-tune", expires_after={"anchor": "created_at", "seconds": 10}
        )
    assert e.value.param == "expires_after[seconds]"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'{"messages": []}\n{"messages": [}\n', "Line 2 is not valid JSON"),
        (b'{"a": 1}\n\n[1, 2]\n', "Line 3 is a JSON list"),
        (b'{"a": "\xff\xfe"}\n', "Line 1 is not valid UTF-8"),
        (b'"just a string"', "Line 1 is a JSON str"),
    ],
)
def test_fine_tune_upload_must_be_jsonl_of_objects(client: openai.OpenAI, content: bytes, needle: str) -> None:
    before = {f.id for f in client.files.list()}
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(file=("bad.jsonl", content), purpose="fine-tune")
    assert needle in e.value.message
    assert (e.value.code, e.value.param) == ("invalid_file_format", "file")
    assert {f.id for f in client.files.list()} == before  # nothing stored


def test_bad_requests(client: openai.OpenAI, server) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(file=("x.jsonl", b"{}\n"), purpose="fine-tuning")  # type: ignore[arg-type]
    assert e.value.param == "purpose" and "fine-tune" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.files.list(order="sideways")  # type: ignore[arg-type]
    assert e.value.param == "order"
    with pytest.raises(openai.BadRequestError) as e:
        client.files.list(limit=0)
    assert e.value.param == "limit"
    # A multipart body without the file part, sent by hand.
    r = httpx.post(
        server.base_url + "/v1/files",
        files={"purpose": (None, b"fine-tune")},
        headers={"Authorization": f"Bearer {client.api_key}"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "file"
    r = httpx.post(
        server.base_url + "/v1/files",
        json={"purpose": "fine-tune"},
        headers={"Authorization": f"Bearer {client.api_key}"},
    )
    assert r.status_code == 400 and "multipart/form-data" in r.json()["error"]["message"]


@pytest.mark.anyio
async def test_async_client_files(async_client: openai.AsyncOpenAI) -> None:
    data = jsonl([chat_line(i) for i in range(10)])
    f = await async_client.files.create(file=("async.jsonl", data), purpose="fine-tune")
    assert (await async_client.files.retrieve(f.id)).id == f.id
    assert await (await async_client.files.content(f.id)).aread() == data
    ids = [x.id async for x in async_client.files.list(limit=1)]
    assert f.id in ids
    assert (await async_client.files.delete(f.id)).deleted is True
    with pytest.raises(openai.NotFoundError):
        await async_client.files.retrieve(f.id)


def _post_form(server, key: str, parts: list[tuple[str, tuple[str | None, bytes]]]) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.post(server.base_url + "/v1/files", files=parts, headers={"Authorization": f"Bearer {key}"})


@pytest.mark.parametrize("char", [b"\x00", b"\x01", b"\x7f", b"\x1b"])
def test_filenames_with_control_characters_are_refused(client: openai.OpenAI, server, char: bytes) -> None:  # type: ignore[no-untyped-def]
    """Sent raw, as a hand-made client can (the SDK's encoder would percent-escape them): stored,
    such a name made every later download drop the connection."""
    before = {f.id for f in client.files.list()}
    body = (
        b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="bad' + char + b'name.jsonl"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n{}\n\r\n--b--\r\n"
    )
    r = httpx.post(
        server.base_url + "/v1/files",
        content=body,
        headers={"Authorization": f"Bearer {client.api_key}", "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == "file" and f"\\x{char[0]:02x}" in err["message"]
    assert {f.id for f in client.files.list()} == before


def test_long_filenames_are_refused_and_unicode_names_download(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(file=("n" * 600 + ".jsonl", b'{"a": 1}\n'), purpose="fine-tune")
    assert e.value.param == "file" and "255" in e.value.message
    f = client.files.create(file=("données «1».jsonl", b'{"a": 1}\n'), purpose="fine-tune")
    assert f.filename == "données «1».jsonl"
    assert client.files.content(f.id).read() == b'{"a": 1}\n'


def test_repeated_and_unknown_form_fields_are_refused(client: openai.OpenAI, server) -> None:  # type: ignore[no-untyped-def]
    """A second ``purpose`` after the file could skip the fine-tune JSONL check; an unknown
    field is refused as it starts, so thousands of them keep nothing in memory."""
    before = {f.id for f in client.files.list()}
    r = _post_form(
        server,
        client.api_key,
        [("purpose", (None, b"batch")), ("file", ("x.jsonl", b"not json\n")), ("purpose", (None, b"fine-tune"))],
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "purpose", r.text
    assert "more than once" in r.json()["error"]["message"]
    many = [(f"f{i}", (None, b"v" * 60_000)) for i in range(200)]
    r = _post_form(server, client.api_key, [("purpose", (None, b"fine-tune")), *many, ("file", ("x.jsonl", b"{}\n"))])
    assert r.status_code == 400 and r.json()["error"]["param"] == "f0"
    assert "Unrecognized request argument" in r.json()["error"]["message"]
    assert {f.id for f in client.files.list()} == before


def test_an_empty_fine_tune_file_is_refused(client: openai.OpenAI) -> None:
    for content in (b"", b"\n\n  \n"):
        with pytest.raises(openai.BadRequestError) as e:
            client.files.create(file=("empty.jsonl", content), purpose="fine-tune")
        assert e.value.code == "invalid_file_format" and "empty" in e.value.message
