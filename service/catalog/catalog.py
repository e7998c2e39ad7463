"""The base-model catalog: short names (no ``/``) mapped to a weights source and serving
settings. Loaded from YAML (``HONE_CATALOG_PATH``); the embedded default is the tiny model
built locally under the data dir (``service/catalog/tiny.py``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MODEL = "hone-tiny"
_DEFAULT_CONTEXT = 4096


class KubernetesPlacement(BaseModel):
    """The Kubernetes launcher's part of a base model's training resources."""

    model_config = ConfigDict(extra="forbid")

    image: str | None = None  # default: the launcher's trainer image
    gpu_resource: str = "nvidia.com/gpu"
    node_selector: dict[str, str] = Field(
        default_factory=dict
    )  # e.g. {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    tolerations: list[dict[str, Any]] = Field(default_factory=list)


class TrainingResources(BaseModel):
    """What one attempt for this base model needs, whatever launcher runs it."""

    model_config = ConfigDict(extra="forbid")

    gpus: int = Field(default=1, ge=0, le=64, description="GPUs per node (one trainer process each)")
    nodes: int = Field(default=1, ge=1, le=1024)
    cpu: str = "8"
    memory: str = "64Gi"
    scratch: str = "200Gi"  # working space for the attempt's copies of data and checkpoints
    kubernetes: KubernetesPlacement = Field(default_factory=KubernetesPlacement)


class BaseModelEntry(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")
    source: str  # local directory or hub id
    max_lora_rank: int = 64
    context_length: int | None = None
    upstreams: list[str] = Field(default_factory=list)
    created: int = 0
    owned_by: str = "system"
    training: TrainingResources = Field(default_factory=TrainingResources)

    def resolved_context_length(self) -> int:
        if self.context_length:
            return self.context_length
        config = Path(self.source) / "config.json"
        if config.is_file():
            return int(json.loads(config.read_text()).get("max_position_embeddings", _DEFAULT_CONTEXT))
        return _DEFAULT_CONTEXT


class Catalog:
    def __init__(self, entries: list[BaseModelEntry]) -> None:
        self._entries = {e.name: e for e in entries}

    def get(self, name: str) -> BaseModelEntry | None:
        return self._entries.get(name)

    def __iter__(self) -> Iterator[BaseModelEntry]:
        return iter(self._entries.values())

    @classmethod
    def from_yaml(cls, path: Path) -> Catalog:
        raw = yaml.safe_load(path.read_text()) or {}
        return cls([BaseModelEntry.model_validate(m) for m in raw.get("models", [])])


def default_catalog(data_dir: Path) -> Catalog:
    """The tiny model, built once into ``data_dir/models/hone-tiny`` (no downloads)."""
    from service.catalog.tiny import build_tiny_model

    target = data_dir / "models" / DEFAULT_MODEL
    if not (target / "config.json").is_file():
        build_tiny_model(target)
    created = int((target / "config.json").stat().st_mtime)
    return Catalog([BaseModelEntry(name=DEFAULT_MODEL, source=str(target), created=created)])
