"""The same BlobStore contract against the local directory and S3 (moto's S3 server over real
HTTP, since no MinIO can be installed here)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract.blobstore import BlobNotFound, BlobStore, open_blobstore
from tests.s3server import moto_s3


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3("hone-test") as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path: Path) -> BlobStore:  # type: ignore[no-untyped-def]
    if request.param == "local":
        return open_blobstore((tmp_path / "blobs").as_uri())
    request.getfixturevalue("s3_endpoint")
    from contract.blobstore.s3 import S3BlobStore

    return S3BlobStore(f"s3://hone-test/run-{os.urandom(4).hex()}", part_size=5 * 1024 * 1024)


def test_write_read_size_delete(store: BlobStore) -> None:
    data = os.urandom(12 * 1024 * 1024 + 123)  # several multipart parts on S3
    with store.writer("files/file-a") as w:
        for i in range(0, len(data), 1_000_003):
            w.write(data[i : i + 1_000_003])
        assert not store.exists("files/file-a")  # invisible until committed
        w.commit()
    assert store.size("files/file-a") == len(data)
    assert hashlib.sha256(b"".join(store.read("files/file-a"))).digest() == hashlib.sha256(data).digest()
    assert store.key_from_uri(store.uri("files/file-a")) == "files/file-a"
    store.delete("files/file-a")
    assert not store.exists("files/file-a")
    with pytest.raises(BlobNotFound):
        list(store.read("files/file-a"))
    with pytest.raises(BlobNotFound):
        store.size("files/file-a")


def test_abort_leaves_nothing_and_prefix_delete(store: BlobStore) -> None:
    with pytest.raises(RuntimeError):
        with store.writer("jobs/j/final/x") as w:
            w.write(os.urandom(6 * 1024 * 1024))
            raise RuntimeError("trainer died")
    assert not store.exists("jobs/j/final/x")
    for name in ("a", "b", "c/d"):
        with store.writer(f"jobs/j/checkpoints/step-1/{name}") as w:
            w.write(b"x")
            w.commit()
    with store.writer("jobs/j2/keep") as w:
        w.write(b"y")
        w.commit()
    store.delete_prefix("jobs/j")
    assert not store.exists("jobs/j/checkpoints/step-1/a") and not store.exists("jobs/j/checkpoints/step-1/c/d")
    assert store.exists("jobs/j2/keep")  # a sibling whose name starts the same is untouched


def test_keys_are_checked(store: BlobStore) -> None:
    for bad in ("../x", "/abs", "a/../b"):
        with pytest.raises(ValueError):
            store.writer(bad)


@pytest.mark.db_incidental  # the blob store's bytes are its subject
@pytest.mark.slow
def test_one_gigabyte_multipart_round_trip(s3_endpoint: str) -> None:
    from contract.blobstore.s3 import S3BlobStore

    store = S3BlobStore("s3://hone-test/big")
    block = os.urandom(4 * 1024 * 1024)
    digest = hashlib.sha256()
    size = 1024 * 1024 * 1024
    with store.writer("files/big") as w:
        for i in range(size // len(block)):
            chunk = block[i % 7 :] + block[: i % 7]  # vary the content block to block
            digest.update(chunk)
            w.write(chunk)
        w.commit()
    assert store.size("files/big") == size
    back = hashlib.sha256()
    for chunk in store.read("files/big", chunk_size=8 * 1024 * 1024):
        back.update(chunk)
    assert back.hexdigest() == digest.hexdigest()
    store.delete("files/big")


def test_sweep_removes_writes_a_crash_abandoned(store: BlobStore) -> None:
    """A writer whose process died never commits or aborts: its temporary file (local) or
    multipart upload (S3) is swept once idle long enough, and a committed blob never is."""
    with store.writer("files/kept") as w:
        w.write(b"kept")
        w.commit()
    crashed = store.writer("files/crashed")
    crashed.write(os.urandom(6 * 1024 * 1024))  # past one S3 part: a multipart upload is open
    if store.url.startswith("file:"):  # moto reports every multipart upload as initiated in 2010
        assert store.sweep_incomplete(older_than_s=3600) == 0  # too recent to be abandoned
    assert store.sweep_incomplete(older_than_s=0) == 1
    assert store.sweep_incomplete(older_than_s=0) == 0
    assert not store.exists("files/crashed") and b"".join(store.read("files/kept")) == b"kept"
