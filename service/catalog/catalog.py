"""The base-model catalog: short names (no ``/``) mapped to a weights source and serving
settings. Loaded from YAML (``HONE_CATALOG_PATH``); the embedded default offers the built-in
models named by ``HONE_MODELS`` (``service/catalog/builtin.py``), each built once under the
data dir."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

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
    # "pooling": served as an embedding model (vLLM --runner pooling --convert embed, no LoRA):
    # /v1/embeddings only, and never fine-tuned. "generate": chat, completions, responses.
    runner: Literal["generate", "pooling"] = "generate"

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


def default_catalog(data_dir: Path, models: Sequence[str] = (DEFAULT_MODEL,)) -> Catalog:
    """The built-in ``models`` (``HONE_MODELS``), each built once into ``data_dir/models/NAME``.
    An unknown name is refused before anything is built."""
    from service.catalog import builtin

    unknown = [name for name in models if name not in builtin.BUILTIN_MODELS]
    if unknown or not models:
        named = f"unknown built-in models {unknown}" if unknown else "no model"
        raise builtin.UnknownModel(f"HONE_MODELS names {named}; the built-in models are: {builtin.known()}")
    specs = [builtin.get(name) for name in dict.fromkeys(models)]
    entries = []
    for spec in specs:
        target = builtin.ensure_built(spec.name, data_dir / "models")
        entries.append(
            BaseModelEntry(
                name=spec.name,
                source=str(target),
                max_lora_rank=spec.max_lora_rank,
                context_length=spec.context_length,
                created=int((target / "config.json").stat().st_mtime),
            )
        )
    return Catalog(entries)
