"""Fixtures of the browser tests: one Chromium per session, a real ``hone serve`` process per
module (the tiny model, the local trainer launcher), a fresh page per test that fails the test
on any console error, uncaught exception or CSP violation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.browser import PageProblems, chromium
from tests.harness.process import ServerProcess, hone_serve


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def hone(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[ServerProcess]:
    with hone_serve(tmp_path_factory.mktemp("ui"), tiny_model_dir, env={"HONE_LOOP_INTERVAL_S": "0.2"}) as server:
        yield server


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems = PageProblems(page)
    yield page
    problems.check()
    context.close()
