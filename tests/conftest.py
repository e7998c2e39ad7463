"""Shared fixtures: the tiny model, and a real hone server on a real port per test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.catalog.catalog import BaseModelEntry, Catalog
from tests.harness.server import RunningServer, start_server


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from service.catalog.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "hone-tiny")


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
