"""Checkpoints and adapters in the blob store (DESIGN.md §3).

A checkpoint directory holds the PEFT adapter (or full weights) and everything a resume needs:
optimizer and RNG state as safetensors, scheduler and progress as JSON. No pickle anywhere.
Upload writes every file first and ``manifest.json`` (sha256 of each file) last: a directory
without a manifest is incomplete and is never resumed from or served. Download verifies every
hash.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from service.blobstore import BlobStore

MANIFEST = "manifest.json"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def upload_dir(store: BlobStore, local: Path, key: str, manifest: dict[str, Any]) -> str:
    files = sorted(p for p in local.iterdir() if p.is_file() and p.name != MANIFEST)
    digests = {}
    for path in files:
        with store.writer(f"{key}/{path.name}") as w, path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                w.write(chunk)
            w.commit()
        digests[path.name] = sha256_file(path)
    with store.writer(f"{key}/{MANIFEST}") as w:
        w.write(json.dumps({**manifest, "files": digests}, indent=2, sort_keys=True).encode())
        w.commit()
    return store.uri(key)


def download_dir(store: BlobStore, uri: str, local: Path) -> dict[str, Any]:
    key = store.key_from_uri(uri)
    manifest = json.loads(b"".join(store.read(f"{key}/{MANIFEST}")))
    local.mkdir(parents=True, exist_ok=True)
    for name, digest in manifest["files"].items():
        if "/" in name or name.startswith("."):
            raise ValueError(f"bad file name in manifest: {name!r}")
        path = local / name
        with path.open("wb") as fh:
            for chunk in store.read(f"{key}/{name}"):
                fh.write(chunk)
        if sha256_file(path) != digest:
            raise ValueError(f"{uri}/{name}: sha256 does not match the manifest")
    return manifest  # type: ignore[no-any-return]


def save_optimizer(optimizer: torch.optim.Optimizer, local: Path) -> None:
    sd = optimizer.state_dict()
    tensors = {f"{idx}.{name}": t.detach().cpu().contiguous()
               for idx, st in sd["state"].items() for name, t in st.items() if torch.is_tensor(t)}
    scalars = {str(idx): {n: v for n, v in st.items() if not torch.is_tensor(v)} for idx, st in sd["state"].items()}
    if tensors:
        save_file(tensors, str(local / "optimizer.safetensors"))
    (local / "optimizer.json").write_text(json.dumps({"param_groups": sd["param_groups"], "scalars": scalars}))


def load_optimizer(optimizer: torch.optim.Optimizer, local: Path) -> None:
    meta = json.loads((local / "optimizer.json").read_text())
    tensors = load_file(str(local / "optimizer.safetensors")) if (local / "optimizer.safetensors").exists() else {}
    state: dict[int, dict[str, Any]] = {int(i): dict(s) for i, s in meta["scalars"].items()}
    for key, t in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = t
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_rng(local: Path) -> None:
    tensors = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    save_file(tensors, str(local / "rng.safetensors"))


def load_rng(local: Path) -> None:
    tensors = load_file(str(local / "rng.safetensors"))
    torch.set_rng_state(tensors["cpu"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda"))]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
