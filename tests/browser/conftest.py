"""Fixtures of the browser tests: one Chromium per session and a fresh page per test
(tests.harness.browser), and a real ``hone serve`` process per module (the tiny model, the
local trainer launcher)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.browser import browser, page
from tests.harness.process import ServerProcess, hone_serve

__all__ = ["browser", "page"]


@pytest.fixture(scope="module")
def hone(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[ServerProcess]:
    with hone_serve(tmp_path_factory.mktemp("ui"), tiny_model_dir, env={"HONE_LOOP_INTERVAL_S": "0.2"}) as server:
        yield server
