"""``manifest.json``: written last into every checkpoint and adapter directory, so a directory
without one is incomplete and is never resumed from or served. It names the model, its base
and LoRA shape, and the sha256 of every other file, which every reader checks."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from contract.blobstore import BlobStore, read_bytes, write_bytes
from contract.layout import MANIFEST, manifest_key

_CHUNK = 1 << 20


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_name: str  # the fine-tuned model name this directory is served under
    base_model: str  # catalog short name
    job_id: str
    step: int = Field(ge=0)
    training_type: str
    rank: int | None = None  # LoRA rank; None for full weights
    target_modules: str | list[str] | None = None
    files: dict[str, str] = Field(default_factory=dict)  # file name -> sha256 hex

    def encode(self) -> bytes:
        return self.model_dump_json(indent=2).encode()

    @classmethod
    def read(cls, store: BlobStore, prefix: str) -> Manifest:
        """The manifest under ``prefix``; ``BlobNotFound`` when the directory is incomplete."""
        return cls.model_validate_json(read_bytes(store, manifest_key(prefix)))

    def check_names(self) -> None:
        for name in self.files:
            if "/" in name or name.startswith(".") or name == MANIFEST:
                raise ValueError(f"bad file name in manifest: {name!r}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def upload_dir(store: BlobStore, local: Path, prefix: str, manifest: Manifest) -> str:
    """Upload every file of ``local`` under ``prefix``, then the manifest with their hashes;
    returns the prefix's URI."""
    files = sorted(p for p in local.iterdir() if p.is_file() and p.name != MANIFEST)
    digests = {}
    for path in files:
        with store.writer(f"{prefix}/{path.name}") as w, path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                w.write(chunk)
            w.commit()
        digests[path.name] = sha256_file(path)
    write_bytes(store, manifest_key(prefix), manifest.model_copy(update={"files": digests}).encode())
    return store.uri(prefix)


def download_dir(store: BlobStore, prefix: str, local: Path, only: Iterable[str] | None = None) -> Manifest:
    """Download the files the manifest lists (or ``only`` those) into ``local``, each checked
    against its sha256; raises ``ValueError`` on a mismatch."""
    manifest = Manifest.read(store, prefix)
    manifest.check_names()
    wanted = list(manifest.files) if only is None else list(only)
    missing = [name for name in wanted if name not in manifest.files]
    if missing:
        raise ValueError(f"{prefix}: the manifest lists no {missing}")
    local.mkdir(parents=True, exist_ok=True)
    for name in wanted:
        digest = hashlib.sha256()
        with (local / name).open("wb") as fh:
            for chunk in store.read(f"{prefix}/{name}"):
                digest.update(chunk)
                fh.write(chunk)
        if digest.hexdigest() != manifest.files[name]:
            raise ValueError(f"{prefix}/{name}: sha256 does not match the manifest (tampered or corrupt)")
    return manifest
