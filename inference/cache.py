"""The resolver's local adapter cache: fetch, verify, and evict least recently used.

An adapter is fetched at most once at a time per name (a per-name lock), into a temporary
directory that is renamed into place only after every file's sha256 matched its manifest. It is
refused unless: the name is in the fine-tuned model grammar, its index entry and manifest name
this server's base model, the adapter weights are safetensors, and nothing in it is a pickle.
The cache is bounded in bytes; evicting an adapter calls ``on_evict(name)`` so vLLM forgets it
too and fetches it again on the next request.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from contract import adapter_index
from contract.blobstore import BlobNotFound, BlobStore
from contract.layout import ADAPTER_CONFIG, ADAPTER_FILES
from contract.manifest import Manifest, download_dir
from contract.names import ModelName

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")
_CHUNK = 1 << 20


class AdapterRefused(Exception):
    """The name or the adapter behind it must not be served."""


class AdapterNotFound(AdapterRefused):
    pass


class AdapterCache:
    def __init__(
        self,
        store: BlobStore,
        root: Path,
        base_model: str,
        max_bytes: int,
        on_evict: Callable[[str], None] | None = None,
    ) -> None:
        self.store, self.root, self.base_model, self.max_bytes = store, root, base_model, max_bytes
        self.on_evict = on_evict
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.downloads = 0  # adapters fetched from the blob store (cold loads)

    def path_for(self, name: str) -> Path:
        return self.root / hashlib.sha256(name.encode()).hexdigest()

    def fetch(self, name: str) -> Path:
        """The local directory of ``name``'s verified adapter (downloaded if needed)."""
        parsed = ModelName.parse(name)
        if parsed is None:
            raise AdapterRefused(f"{name!r} is not a fine-tuned model name")
        if parsed.base != self.base_model:
            raise AdapterRefused(f"{name} is not a fine-tune of {self.base_model}")
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            target = self.path_for(name)
            if (target / ADAPTER_CONFIG).is_file():
                os.utime(target)  # most recently used
                return target
            self._download(name, target)
            self.downloads += 1
        self._evict(keep=target)
        return target

    def _download(self, name: str, target: Path) -> None:
        try:
            entry = adapter_index.lookup(self.store, name)
        except BlobNotFound as e:
            raise AdapterNotFound(f"no adapter is published for {name}") from e
        if entry.name != name or entry.base_model != self.base_model:
            raise AdapterRefused(f"the index entry for {name} does not match it")
        prefix = self.store.key_from_uri(entry.uri)
        try:
            manifest = Manifest.read(self.store, prefix)
        except BlobNotFound as e:
            raise AdapterRefused(f"{name}: the adapter has no manifest (incomplete)") from e
        if manifest.base_model != self.base_model:
            raise AdapterRefused(f"{name}: the manifest's base model is {manifest.base_model!r}")
        pickles = sorted(f for f in manifest.files if f.lower().endswith(PICKLE_SUFFIXES))
        if pickles:
            raise AdapterRefused(f"{name}: refusing pickle files {pickles}; adapters must be safetensors")
        missing = [f for f in ADAPTER_FILES if f not in manifest.files]
        if missing:
            raise AdapterRefused(f"{name}: not a LoRA adapter in safetensors (missing {missing})")
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".fetch-"))
        try:
            try:
                download_dir(self.store, prefix, tmp, only=ADAPTER_FILES)
            except ValueError as e:
                raise AdapterRefused(f"{name}: {e}") from e
            (tmp / "name.txt").write_text(name)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _size(self, d: Path) -> int:
        return sum(f.stat().st_size for f in d.iterdir() if f.is_file())

    def _evict(self, keep: Path) -> None:
        entries = [d for d in self.root.iterdir() if d.is_dir() and not d.name.startswith(".")]
        total = sum(self._size(d) for d in entries)
        for d in sorted(entries, key=lambda d: d.stat().st_mtime):
            if total <= self.max_bytes:
                break
            if d == keep:
                continue
            name = (d / "name.txt").read_text() if (d / "name.txt").exists() else d.name
            total -= self._size(d)
            shutil.rmtree(d, ignore_errors=True)
            log.info("evicted adapter %s from the local cache", name)
            if self.on_evict:
                self.on_evict(name)

    def touch_all(self) -> None:  # test helper: deterministic LRU order
        for i, d in enumerate(sorted(self.root.iterdir())):
            os.utime(d, (time.time() + i, time.time() + i))
