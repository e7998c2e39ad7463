"""A real headless Chromium (Debian's ``chromium`` package) driven by Playwright for Python.

Playwright's own browser download cannot work here, so the system browser is launched by its
path (``HONE_CHROMIUM``, else ``chromium`` on PATH; ``scripts/setup.sh`` installs it where it
runs as root). Each page records the browser console's errors, uncaught exceptions and
Content-Security-Policy violations, which the tests treat as failures.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("HONE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
# Where screenshots go when asked for (scripts/screenshots.sh sets it to docs/screenshots).
SCREENSHOTS = os.environ.get("HONE_UI_SCREENSHOTS")


def needs_browser() -> list[pytest.MarkDecorator]:
    """Skip without Chromium or Playwright, except in CI, where their absence is a failure
    (the test command installs both)."""
    missing = []
    if CHROMIUM is None:
        missing.append("Debian's chromium (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("playwright (pip install playwright)")
    if missing and os.environ.get("CI") == "true":
        raise RuntimeError(f"browser tests need {', '.join(missing)}; scripts/setup.sh installs them as root")
    return [pytest.mark.skipif(bool(missing), reason="needs " + ", ".join(missing))]


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class PageProblems:
    """What went wrong in a page: console errors, uncaught exceptions, CSP violations."""

    IGNORED = (re.compile(r"Failed to load resource: the server responded with a status of 4\d\d"),)

    def __init__(self, page: Any) -> None:
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"uncaught: {exc}"))

    def _console(self, msg: Any) -> None:
        if msg.type == "error" and not any(p.search(msg.text) for p in self.IGNORED):
            self.problems.append(f"console error: {msg.text}")

    def check(self) -> None:
        assert not self.problems, "\n".join(self.problems)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module, closed at its end: Playwright's sync API keeps
    an event loop on the main thread while it runs, which no other test should inherit (and a
    second one cannot start beside it). Registered once, in tests/conftest.py."""
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (own context: own session storage) that fails its test on any console
    error, uncaught exception or CSP violation."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems = PageProblems(page)
    yield page
    problems.check()
    context.close()


def shoot(page: Any, name: str) -> None:
    """Save a screenshot of the page as ``<HONE_UI_SCREENSHOTS>/<name>.png`` when asked for."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def sign_in(page: Any, base_url: str, api_key: str, hash_path: str = "#/jobs") -> None:
    """Open the dashboard at ``hash_path`` and sign in there with ``api_key``."""
    page.goto(f"{base_url}/ui/{hash_path}")
    page.get_by_label("Project API key").fill(api_key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Jobs").wait_for()
