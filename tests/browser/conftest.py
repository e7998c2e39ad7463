"""Fixtures of the browser tests: a real ``hone serve`` process per module (the tiny model, the
local trainer launcher). ``browser`` and ``page`` come from tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.process import ServerProcess, hone_serve


@pytest.fixture(scope="module")
def hone(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[ServerProcess]:
    with hone_serve(tmp_path_factory.mktemp("ui"), tiny_model_dir, env={"HONE_LOOP_INTERVAL_S": "0.2"}) as server:
        yield server
