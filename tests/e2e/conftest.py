"""Fixtures of the end-to-end modules: one vLLM serving the tiny model, shared by the modules
that need nothing special of it (serving, responses, sharing, evals), because each start costs
about a minute on a CPU. Each module still runs its own hone server on its own database; their
blobs share the vLLM's store, where every key is unique (ids, and model names with a random
short id), so no module sees another's adapters by name. Stopped when the package ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from inference.launch import VllmServer
from tests.harness.vllm import tiny_vllm


@pytest.fixture(scope="package")
def shared_tiny_vllm(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[VllmServer]:
    with tiny_vllm(tmp_path_factory.mktemp("e2e-shared-vllm"), tiny_model_dir) as vllm:
        yield vllm
