"""The inference resolver's adapter cache refuses everything it must not serve, downloads each
adapter once under concurrency, and evicts least recently used adapters beyond its bound."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from contract import adapter_index
from contract.adapter_index import AdapterIndexEntry
from contract.blobstore import open_blobstore, write_bytes
from contract.blobstore.local import LocalBlobStore
from contract.layout import JobLayout, manifest_key
from contract.manifest import Manifest
from inference.cache import AdapterCache, AdapterNotFound, AdapterRefused

NAME = "ft:hone-tiny:acme::AbCdEfGh"


def publish(
    store: LocalBlobStore,
    name: str,
    files: dict[str, bytes],
    *,
    base: str = "hone-tiny",
    manifest_base: str | None = None,
    tamper: str | None = None,
) -> None:
    job_id = f"ftjob-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    prefix = JobLayout.for_job(job_id).final
    digests = {}
    for fname, data in files.items():
        digests[fname] = hashlib.sha256(data).hexdigest()
        write_bytes(store, f"{prefix}/{fname}", data + (b"evil" if fname == tamper else b""))
    manifest = Manifest(
        model_name=name,
        base_model=manifest_base or base,
        job_id=job_id,
        step=1,
        training_type="lora",
        rank=8,
        target_modules="all-linear",
        files=digests,
    )
    write_bytes(store, manifest_key(prefix), manifest.encode())
    adapter_index.publish(store, AdapterIndexEntry(name=name, uri=store.uri(prefix), base_model=base))


GOOD = {"adapter_model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ", "adapter_config.json": b'{"r": 8}'}


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return open_blobstore((tmp_path / "blobs").as_uri())  # type: ignore[return-value]


def cache(store: LocalBlobStore, tmp_path: Path, **kw) -> AdapterCache:  # type: ignore[no-untyped-def]
    return AdapterCache(store, tmp_path / "cache", "hone-tiny", kw.pop("max_bytes", 1 << 30), **kw)


def test_fetches_and_verifies(store: LocalBlobStore, tmp_path: Path) -> None:
    publish(store, NAME, GOOD)
    path = cache(store, tmp_path).fetch(NAME)
    assert (path / "adapter_model.safetensors").read_bytes() == GOOD["adapter_model.safetensors"]
    assert sorted(p.name for p in path.iterdir()) == ["adapter_config.json", "adapter_model.safetensors", "name.txt"]


def test_refuses_a_tampered_adapter(store: LocalBlobStore, tmp_path: Path) -> None:
    publish(store, NAME, GOOD, tamper="adapter_model.safetensors")
    c = cache(store, tmp_path)
    with pytest.raises(AdapterRefused, match="sha256"):
        c.fetch(NAME)
    assert not c.path_for(NAME).exists() and [p.name for p in c.root.iterdir()] == []  # nothing half-written


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "ft:hone-tiny:acme::../../../x",
        "ft:hone-tiny:acme::AbCdEfGh/../../x",
        "ft:hone-tiny:acme::AbCdEfG",
        "ft:hone-tiny:ACME::AbCdEfGh",
        "hone-tiny",
        "ft:hone-tiny:acme::AbCdEfGh:ckpt-step-x",
        "ft:hone-tiny:acme:a/b:AbCdEfGh",
        "ft:hone-tiny:acme::AbCdEfGh\n",
        "file:///etc/passwd",
        "",
    ],
)
def test_refuses_names_outside_the_grammar(store: LocalBlobStore, tmp_path: Path, name: str) -> None:
    with pytest.raises(AdapterRefused, match="not a fine-tuned model name"):
        cache(store, tmp_path).fetch(name)


def test_refuses_pickles(store: LocalBlobStore, tmp_path: Path) -> None:
    publish(store, NAME, {**GOOD, "adapter_model.bin": b"\x80\x04K\x01."})
    with pytest.raises(AdapterRefused, match="pickle"):
        cache(store, tmp_path).fetch(NAME)
    other = "ft:hone-tiny:acme::PicklOne"
    publish(store, other, {"adapter_model.pt": b"\x80\x04.", "adapter_config.json": b"{}"})
    with pytest.raises(AdapterRefused, match="pickle"):
        cache(store, tmp_path).fetch(other)


def test_refuses_other_bases_unpublished_and_non_lora(store: LocalBlobStore, tmp_path: Path) -> None:
    c = cache(store, tmp_path)
    with pytest.raises(AdapterRefused, match="not a fine-tune of"):
        c.fetch("ft:other-base:acme::AbCdEfGh")
    with pytest.raises(AdapterNotFound):
        c.fetch(NAME)
    publish(store, NAME, GOOD, manifest_base="other-base")
    with pytest.raises(AdapterRefused, match="base model"):
        c.fetch(NAME)
    full = "ft:hone-tiny:acme::FullFtAa"
    publish(store, full, {"model.safetensors": b"x", "config.json": b"{}"})
    with pytest.raises(AdapterRefused, match="not a LoRA adapter"):
        c.fetch(full)


def test_one_download_under_concurrency(store: LocalBlobStore, tmp_path: Path) -> None:
    publish(store, NAME, GOOD)
    c = cache(store, tmp_path)
    paths: list[Path] = []
    threads = [threading.Thread(target=lambda: paths.append(c.fetch(NAME))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.downloads == 1 and len(set(paths)) == 1 and len(paths) == 8


def test_lru_eviction_tells_vllm_to_forget(store: LocalBlobStore, tmp_path: Path) -> None:
    names = [f"ft:hone-tiny:acme::Lru{i:05d}" for i in range(3)]
    for n in names:
        publish(store, n, GOOD)
    evicted: list[str] = []
    size = sum(len(v) for v in GOOD.values()) + len(names[0])  # one adapter on disk, name.txt included
    c = cache(store, tmp_path, max_bytes=2 * size, on_evict=evicted.append)
    c.fetch(names[0])
    c.fetch(names[1])
    c.touch_all()
    import os

    os.utime(c.path_for(names[0]), (10**10, 10**10))  # names[0] used most recently
    c.fetch(names[2])
    assert evicted == [names[1]]
    assert c.path_for(names[0]).exists() and not c.path_for(names[1]).exists() and c.path_for(names[2]).exists()
