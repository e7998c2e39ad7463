"""/v1/uploads through the official SDK: ``upload_file_chunked``, parts sent concurrently and out
of order, the File a completion yields (content, JSONL check across parts), every refusal
(md5, foreign or missing part ids, sizes that do not add up, closed uploads, other projects), and
the janitor's part (the server's own loop): expired and cancelled uploads lose their parts, completed ones keep none.
A second server stores its blobs on S3 (moto's S3 server over real HTTP): parts of at least
5 MiB are joined by server-side copies, smaller ones streamed through."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
import openai
import pytest
from sqlalchemy import select, update

from contract.layout import upload_prefix
from service.db.schema import File, Upload, UploadPart
from tests.contract.helpers import chat_line, jsonl
from tests.contract.openapi import SpecChecker
from tests.harness.node import run_node
from tests.harness.server import RunningServer, start_server
from tests.harness.waiting import wait_until
from tests.s3server import moto_s3

MB = 1024 * 1024
PART_MAX = 1 * MB


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, catalog) -> Iterator[RunningServer]:  # type: ignore[no-untyped-def]
    """Small limits so the limits are testable: parts of at most 1 MiB, uploads of at most 8 MiB."""
    srv = start_server(
        tmp_path_factory.mktemp("uploads"), catalog, upload_part_max_bytes=PART_MAX, upload_max_bytes=8 * MB
    )
    yield srv
    srv.stop()


def training(n: int) -> bytes:
    return jsonl([chat_line(i) for i in range(n)])


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def part_blobs(server: RunningServer, upload_id: str) -> list[Path]:
    root = Path(server.ctx.store.root) / upload_prefix(upload_id)
    return sorted(root.glob("*")) if root.exists() else []


def error_of(exc: pytest.ExceptionInfo[openai.APIStatusError]) -> dict[str, str | None]:
    body = exc.value.body
    assert isinstance(body, dict)
    return body


def test_upload_file_chunked_yields_a_file(client: openai.OpenAI, server: RunningServer, tmp_path: Path) -> None:
    data = training(3000)
    assert len(data) > 3 * 100_000
    path = tmp_path / "train.jsonl"
    path.write_bytes(data)
    upload = client.uploads.upload_file_chunked(
        file=path, mime_type="text/jsonl", purpose="fine-tune", part_size=100_000, md5=hashlib.md5(data).hexdigest()
    )
    assert upload.object == "upload" and upload.id.startswith("upload_")
    assert upload.status == "completed" and upload.bytes == len(data) and upload.filename == "train.jsonl"
    assert upload.expires_at - upload.created_at == 3600
    assert upload.file is not None and upload.file.id.startswith("file-")
    assert (
        upload.file.bytes == len(data) and upload.file.purpose == "fine-tune" and upload.file.filename == "train.jsonl"
    )
    assert client.files.content(upload.file.id).read() == data
    assert client.files.retrieve(upload.file.id).bytes == len(data)
    with server.ctx.db.session() as s:
        row = s.scalar(select(Upload).where(Upload.id == upload.id))
        assert row is not None and row.file_id == upload.file.id
        assert s.scalars(select(UploadPart).where(UploadPart.upload_id == upload.id)).all() == []
        stored = s.scalar(select(File).where(File.id == upload.file.id))
        assert stored is not None and stored.sha256 == hashlib.sha256(data).hexdigest()
    assert part_blobs(server, upload.id) == []  # the parts are in the File now
    # A fine-tuning job accepts the File like any other.
    job = client.fine_tuning.jobs.create(model="hone-tiny", training_file=upload.file.id)
    assert job.training_file == upload.file.id


def test_concurrent_parts_out_of_order(client: openai.OpenAI, server: RunningServer) -> None:
    data = training(2500)
    chunks = split(data, 50_000)
    assert len(chunks) >= 8
    upload = client.uploads.create(
        bytes=len(data), filename="c.jsonl", mime_type="application/jsonl", purpose="fine-tune"
    )
    order = list(range(len(chunks)))
    random.Random(7).shuffle(order)

    def send(i: int) -> tuple[int, str]:
        return i, client.uploads.parts.create(upload.id, data=chunks[i]).id

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = dict(pool.map(send, order))
    assert len(part_blobs(server, upload.id)) == len(chunks)
    done = client.uploads.complete(upload.id, part_ids=[ids[i] for i in range(len(chunks))])
    assert done.status == "completed" and done.file is not None
    assert client.files.content(done.file.id).read() == data


def test_completion_refusals_leave_the_upload_pending(client: openai.OpenAI, server: RunningServer) -> None:
    data = training(400)
    cut = data.index(b"\n") + 5  # inside the second line, so the parts swapped are not JSONL
    a, b = data[:cut], data[cut:]
    upload = client.uploads.create(bytes=len(data), filename="r.jsonl", mime_type="text/jsonl", purpose="fine-tune")
    pa = client.uploads.parts.create(upload.id, data=a).id
    pb = client.uploads.parts.create(upload.id, data=b).id
    other = client.uploads.create(bytes=10, filename="o.txt", mime_type="text/plain", purpose="assistants")
    foreign = client.uploads.parts.create(other.id, data=b"0123456789").id

    cases = [
        ({"part_ids": [pa, pb], "md5": hashlib.md5(b"other").hexdigest()}, "md5", "md5 of the assembled content"),
        ({"part_ids": [pa, pb], "md5": "xyz"}, "md5", "32 hexadecimal"),
        ({"part_ids": [pa, foreign]}, "part_ids", f"part_ids[1] = '{foreign}' is not a Part of Upload"),
        ({"part_ids": [pa, "part_missing"]}, "part_ids", "part_ids[1] = 'part_missing'"),
        ({"part_ids": [pa]}, "bytes", f"hold {len(a)} bytes"),
        ({"part_ids": [pa, pa]}, "part_ids", "listed twice"),
        ({"part_ids": []}, "part_ids", "empty"),
        ({"part_ids": [pb, pa]}, "part_ids", "Line "),  # the wrong order splits a line: not JSONL
    ]
    for body, param, message in cases:
        with pytest.raises(openai.BadRequestError) as exc:
            client.uploads.complete(upload.id, **body)  # type: ignore[arg-type]
        err = error_of(exc)
        assert err["param"] == param and message in str(err["message"]), (body, err)
    with server.ctx.db.session() as s:  # nothing was left behind by the failed completions
        assert s.scalar(select(File).where(File.bytes == len(data), File.filename == "r.jsonl")) is None
    done = client.uploads.complete(upload.id, part_ids=[pa, pb], md5=hashlib.md5(data).hexdigest().upper())
    assert done.status == "completed" and done.file is not None
    assert client.files.content(done.file.id).read() == data


def test_jsonl_errors_name_the_line_across_parts(client: openai.OpenAI) -> None:
    good = training(50)
    data = good + b'{"messages": [}\n'
    upload = client.uploads.create(bytes=len(data), filename="bad.jsonl", mime_type="text/jsonl", purpose="fine-tune")
    ids = [client.uploads.parts.create(upload.id, data=c).id for c in split(data, 1000)]
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.complete(upload.id, part_ids=ids)
    err = error_of(exc)
    assert err["code"] == "invalid_file_format" and "Line 51 is not valid JSON" in str(err["message"])
    # Other purposes are not JSONL-checked, as with /v1/files.
    blob = bytes(range(256)) * 10
    other = client.uploads.create(bytes=len(blob), filename="x.bin", mime_type="application/pdf", purpose="user_data")
    done = client.uploads.complete(other.id, part_ids=[client.uploads.parts.create(other.id, data=blob).id])
    assert done.file is not None and client.files.content(done.file.id).read() == blob


def test_create_refusals(client: openai.OpenAI) -> None:
    base = {"bytes": 100, "filename": "t.jsonl", "mime_type": "text/jsonl", "purpose": "fine-tune"}
    cases = [
        ({"bytes": 8 * MB + 1}, "bytes", f"1 to {8 * MB} bytes"),
        ({"bytes": 0}, "bytes", "1 to"),
        ({"purpose": "fine-tune-results"}, "purpose", "Invalid 'purpose'"),
        ({"mime_type": "image/png"}, "mime_type", "not supported for purpose 'fine-tune'"),
        ({"mime_type": "nonsense"}, "mime_type", "not supported"),
        ({"filename": "a\x01b"}, "filename", "control characters"),
        ({"filename": "dir/x.jsonl"}, "filename", "without '/'"),
        ({"expires_after": {"anchor": "created_at", "seconds": 5}}, "expires_after[seconds]", "value >= 3600"),
    ]
    for change, param, message in cases:
        with pytest.raises(openai.BadRequestError) as exc:
            client.uploads.create(**{**base, **change})  # type: ignore[arg-type]
        err = error_of(exc)
        assert err["param"] == param and message in str(err["message"]), (change, err)
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.create(**base, extra_body={"colour": "red"})  # type: ignore[arg-type]
    assert error_of(exc)["param"] == "colour"


def test_part_refusals(client: openai.OpenAI, server: RunningServer) -> None:
    upload = client.uploads.create(bytes=PART_MAX + 10, filename="p.txt", mime_type="text/plain", purpose="assistants")
    with pytest.raises(openai.APIStatusError) as exc:
        client.uploads.parts.create(upload.id, data=b"x" * (PART_MAX + 1))
    assert exc.value.status_code == 413 and error_of(exc)["param"] == "data"
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.parts.create(upload.id, data=b"")
    assert error_of(exc)["param"] == "data"
    client.uploads.parts.create(upload.id, data=b"x" * PART_MAX)
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.parts.create(upload.id, data=b"y" * 11)
    assert error_of(exc)["param"] == "data" and "more than the" in str(error_of(exc)["message"])
    assert len(part_blobs(server, upload.id)) == 1  # refused parts leave no bytes behind
    http = httpx.post(
        f"{server.v1}/uploads/{upload.id}/parts",
        headers={"authorization": f"Bearer {client.api_key}"},
        files={"file": ("x", b"abc")},
    )
    assert http.status_code == 400 and http.json()["error"]["param"] == "file"  # the field is 'data'


def test_cancel_and_closed_uploads(client: openai.OpenAI, server: RunningServer) -> None:
    upload = client.uploads.create(bytes=20, filename="c.txt", mime_type="text/plain", purpose="assistants")
    part = client.uploads.parts.create(upload.id, data=b"0123456789").id
    cancelled = client.uploads.cancel(upload.id)
    assert cancelled.status == "cancelled" and cancelled.file is None
    for call in (
        lambda: client.uploads.parts.create(upload.id, data=b"0123456789"),
        lambda: client.uploads.complete(upload.id, part_ids=[part]),
        lambda: client.uploads.cancel(upload.id),
    ):
        with pytest.raises(openai.BadRequestError) as exc:
            call()
        assert "it is cancelled" in str(error_of(exc)["message"])

    def part_rows() -> list[UploadPart]:
        with server.ctx.db.session() as s:
            return list(s.scalars(select(UploadPart).where(UploadPart.upload_id == upload.id)))

    # The janitor deletes the blobs, then the rows: wait for the rows, the last step.
    wait_until(lambda: part_rows() == [], "the janitor forgets the cancelled upload's parts")
    assert part_blobs(server, upload.id) == []
    done = client.uploads.create(bytes=3, filename="d.txt", mime_type="text/plain", purpose="assistants")
    client.uploads.complete(done.id, part_ids=[client.uploads.parts.create(done.id, data=b"abc").id])
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.parts.create(done.id, data=b"d")
    assert "it is completed" in str(error_of(exc)["message"])


def test_expired_uploads(client: openai.OpenAI, server: RunningServer) -> None:
    upload = client.uploads.create(bytes=20, filename="e.txt", mime_type="text/plain", purpose="assistants")
    part = client.uploads.parts.create(upload.id, data=b"0123456789").id
    with server.ctx.db.session() as s:
        s.execute(update(Upload).where(Upload.id == upload.id).values(expires_at=Upload.created_at - 1))
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.parts.create(upload.id, data=b"0123456789")
    assert "it is expired" in str(error_of(exc)["message"])
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.complete(upload.id, part_ids=[part])
    assert "it is expired" in str(error_of(exc)["message"])
    wait_until(lambda: part_blobs(server, upload.id) == [], "the janitor deletes the expired upload's parts")
    with server.ctx.db.session() as s:
        row = s.scalar(select(Upload).where(Upload.id == upload.id))
        assert row is not None and row.status == "expired"


def test_another_projects_upload_is_not_found(client: openai.OpenAI, server: RunningServer) -> None:
    upload = client.uploads.create(bytes=3, filename="t.txt", mime_type="text/plain", purpose="assistants")
    part = client.uploads.parts.create(upload.id, data=b"abc").id
    with openai.OpenAI(base_url=server.v1, api_key=server.new_key("intruder"), max_retries=0) as other:
        for call in (
            lambda: other.uploads.parts.create(upload.id, data=b"abc"),
            lambda: other.uploads.complete(upload.id, part_ids=[part]),
            lambda: other.uploads.cancel(upload.id),
        ):
            with pytest.raises(openai.NotFoundError):
                call()
        mine = other.uploads.create(bytes=3, filename="t.txt", mime_type="text/plain", purpose="assistants")
        with pytest.raises(openai.BadRequestError) as exc:  # a part of another project's upload
            other.uploads.complete(mine.id, part_ids=[part])
        assert error_of(exc)["param"] == "part_ids"
    assert client.uploads.complete(upload.id, part_ids=[part]).status == "completed"


def test_uploads_through_the_node_sdk(server: RunningServer, tmp_path: Path) -> None:
    results = run_node("uploads.mjs", tmp_path, base_url=server.v1, api_key=server.new_key("node-uploads"))
    assert results["file"].startswith("file-") and results["status"] == "completed"
    assert results["bytes"] == results["downloaded"]


# S3


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory, catalog) -> Iterator[tuple[RunningServer, str]]:  # type: ignore[no-untyped-def]
    with moto_s3("hone-uploads") as endpoint:
        srv = start_server(tmp_path_factory.mktemp("s3uploads"), catalog, storage_url="s3://hone-uploads/u")
        yield srv, endpoint
        srv.stop()


@pytest.mark.parametrize("part_size", [6 * MB, 2 * MB], ids=["server-side-copy", "streamed"])
def test_uploads_on_s3(s3: tuple[RunningServer, str], spec_checker: SpecChecker, part_size: int) -> None:
    srv, endpoint = s3
    http = httpx.Client(event_hooks={"response": [spec_checker.hook]}, timeout=120)
    client = openai.OpenAI(base_url=srv.v1, api_key=srv.new_key("s3"), max_retries=0, http_client=http)
    data = training(150_000)[: 3 * part_size + 12345]
    data = data[: data.rindex(b"\n") + 1]
    chunks = split(data, part_size)
    upload = client.uploads.create(bytes=len(data), filename="s3.jsonl", mime_type="text/jsonl", purpose="fine-tune")
    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = list(pool.map(lambda c: client.uploads.parts.create(upload.id, data=c).id, chunks))
    s3c = boto3.client("s3", endpoint_url=endpoint)
    listed = s3c.list_objects_v2(Bucket="hone-uploads", Prefix=f"u/uploads/{upload.id}/")
    assert len(listed["Contents"]) == len(chunks)
    done = client.uploads.complete(upload.id, part_ids=ids, md5=hashlib.md5(data).hexdigest())
    assert done.file is not None
    assert hashlib.sha256(client.files.content(done.file.id).read()).digest() == hashlib.sha256(data).digest()
    assert "Contents" not in s3c.list_objects_v2(Bucket="hone-uploads", Prefix=f"u/uploads/{upload.id}/")
    head = s3c.head_object(Bucket="hone-uploads", Key=f"u/files/{done.file.id}")
    assert head["ContentLength"] == len(data)
    if part_size >= 5 * MB:  # joined by UploadPartCopy: a multipart object of one S3 part per Part
        assert head["ETag"].endswith(f'-{len(chunks)}"')


def test_the_file_expiry_follows_expires_after(client: openai.OpenAI) -> None:
    line = b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
    for expires_after, expected in (({"anchor": "created_at", "seconds": 7200}, 7200), (None, 30 * 24 * 3600)):
        extra = {"expires_after": expires_after} if expires_after else {}
        upload = client.uploads.create(
            bytes=len(line), filename="b.jsonl", mime_type="application/jsonl", purpose="batch", **extra
        )
        done = client.uploads.complete(upload.id, part_ids=[client.uploads.parts.create(upload.id, data=line).id])
        assert done.file is not None and done.file.expires_at is not None
        assert done.file.expires_at - done.file.created_at == expected


@pytest.mark.parametrize("rival", ["complete", "cancel"])
def test_racing_completions_and_cancel_yield_one_outcome(client: openai.OpenAI, rival: str) -> None:
    data = training(6000)
    upload = client.uploads.create(bytes=len(data), filename="race.jsonl", mime_type="text/jsonl", purpose="fine-tune")
    ids = [client.uploads.parts.create(upload.id, data=c).id for c in split(data, PART_MAX)]

    def complete() -> str:
        return client.uploads.complete(upload.id, part_ids=ids).status

    def other() -> str:
        return complete() if rival == "complete" else client.uploads.cancel(upload.id).status

    outcomes: list[str] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(complete), pool.submit(other)]:
            try:
                outcomes.append(future.result())
            except openai.BadRequestError as e:
                assert e.body is not None
                outcomes.append("refused")
    assert sorted(outcomes) in (["completed", "refused"], ["cancelled", "refused"]), outcomes
