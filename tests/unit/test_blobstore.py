from __future__ import annotations

from pathlib import Path

import pytest

from contract.blobstore import BlobNotFound, check_key, open_blobstore


@pytest.mark.parametrize(
    "key", ["../etc/passwd", "/abs", "a/../b", "a//b", "a/", "", ".hidden", "a b", "a\\b", "files/x\x00"]
)
def test_key_grammar_refuses_paths(key: str) -> None:
    with pytest.raises(ValueError):
        check_key(key)


def test_atomic_write_read_delete(tmp_path: Path) -> None:
    store = open_blobstore((tmp_path / "b").as_uri())
    with store.writer("jobs/j1/final/a.bin") as w:
        w.write(b"hello ")
        assert not store.exists("jobs/j1/final/a.bin")  # invisible until committed
        w.write(b"world")
        w.commit()
    assert b"".join(store.read("jobs/j1/final/a.bin", chunk_size=3)) == b"hello world"
    assert store.size("jobs/j1/final/a.bin") == 11
    assert store.key_from_uri(store.uri("jobs/j1/final/a.bin")) == "jobs/j1/final/a.bin"
    with pytest.raises(ValueError):
        store.key_from_uri("file:///etc/passwd")
    store.delete_prefix("jobs/j1")
    assert not store.exists("jobs/j1/final/a.bin")
    with pytest.raises(BlobNotFound):
        list(store.read("jobs/j1/final/a.bin"))


def test_aborted_write_leaves_nothing(tmp_path: Path) -> None:
    store = open_blobstore((tmp_path / "b").as_uri())
    with pytest.raises(RuntimeError):
        with store.writer("files/f") as w:
            w.write(b"partial")
            raise RuntimeError("client went away")
    assert not store.exists("files/f")
    assert list((tmp_path / "b" / "files").iterdir()) == []
