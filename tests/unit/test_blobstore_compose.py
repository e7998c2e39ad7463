"""``BlobStore.compose`` (the parts of an Upload joined into one blob) on the local directory and
on S3 (moto's S3 server over real HTTP): the bytes arrive at ``observe`` in the given order, the
result is their concatenation, a raising ``observe`` leaves nothing, the sources stay. On S3,
sources of at least 5 MiB (all but the last) are joined by UploadPartCopy, smaller ones streamed."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from contract.blobstore import BlobNotFound, BlobStore, open_blobstore, write_bytes
from contract.blobstore.s3 import MIN_PART, S3BlobStore
from tests.s3server import moto_s3


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3("hone-compose") as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path: Path) -> BlobStore:  # type: ignore[no-untyped-def]
    if request.param == "local":
        return open_blobstore((tmp_path / "blobs").as_uri())
    request.getfixturevalue("s3_endpoint")
    return S3BlobStore(f"s3://hone-compose/run-{os.urandom(4).hex()}", part_size=MIN_PART)


def _parts(store: BlobStore, sizes: list[int]) -> tuple[list[str], list[bytes]]:
    keys, blobs = [], []
    for i, size in enumerate(sizes):
        blob = os.urandom(size)
        write_bytes(store, f"uploads/u/p{i}", blob)
        keys.append(f"uploads/u/p{i}")
        blobs.append(blob)
    return keys, blobs


@pytest.mark.parametrize("sizes", [[MIN_PART + 7, MIN_PART, 1234], [100, 1, MIN_PART + 1], [3]])
def test_compose_in_the_given_order(store: BlobStore, sizes: list[int]) -> None:
    keys, blobs = _parts(store, sizes)
    order = list(reversed(range(len(keys))))  # not the order they were written in
    seen = hashlib.sha256()
    store.compose("files/joined", [keys[i] for i in order], seen.update)
    expected = b"".join(blobs[i] for i in order)
    assert seen.digest() == hashlib.sha256(expected).digest()
    assert hashlib.sha256(b"".join(store.read("files/joined"))).digest() == hashlib.sha256(expected).digest()
    assert store.size("files/joined") == len(expected)
    assert all(store.exists(k) for k in keys)  # the sources stay


def test_a_raising_observer_leaves_nothing(store: BlobStore) -> None:
    keys, _ = _parts(store, [MIN_PART, MIN_PART, 10])
    seen = 0

    def observe(chunk: bytes) -> None:
        nonlocal seen
        seen += len(chunk)
        if seen > MIN_PART + 100:
            raise ValueError("line 12 is not JSON")

    with pytest.raises(ValueError):
        store.compose("files/bad", keys, observe)
    assert not store.exists("files/bad")


def test_a_missing_source(store: BlobStore) -> None:
    keys, _ = _parts(store, [10])
    with pytest.raises(BlobNotFound):
        store.compose("files/x", [*keys, "uploads/u/gone"], lambda chunk: None)
    assert not store.exists("files/x")


def test_s3_joins_large_parts_by_server_side_copy(s3_endpoint: str) -> None:
    store = S3BlobStore(f"s3://hone-compose/copy-{os.urandom(4).hex()}", part_size=MIN_PART)
    keys, blobs = _parts(store, [MIN_PART, MIN_PART + 3, 99])
    store.compose("files/joined", keys, lambda chunk: None)
    head = boto3.client("s3", endpoint_url=s3_endpoint).head_object(
        Bucket="hone-compose", Key=f"{store.prefix}/files/joined"
    )
    assert head["ETag"].endswith('-3"')  # one S3 part per source
    assert b"".join(store.read("files/joined")) == b"".join(blobs)
    uploads = boto3.client("s3", endpoint_url=s3_endpoint).list_multipart_uploads(Bucket="hone-compose")
    assert not [u for u in uploads.get("Uploads", []) if u["Key"].startswith(store.prefix)]
