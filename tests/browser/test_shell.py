"""The dashboard's shell in a real Chromium against a real ``hone serve``: sign-in with a
project API key (kept in session storage, never in a URL), wrong keys refused, sign-out, the
Content-Security-Policy on every file and enforced by the browser."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.ui import CONTENT_SECURITY_POLICY
from tests.harness.browser import needs_browser, shoot, sign_in
from tests.harness.process import ServerProcess

pytestmark = [*needs_browser(), pytest.mark.db_incidental]


def test_sign_in_keeps_the_key_in_session_storage_only(page: Any, hone: ServerProcess) -> None:
    page.goto(hone.base_url + "/")  # the root redirects to the dashboard
    assert page.url.endswith("/ui/")
    page.get_by_label("Project API key").wait_for()
    shoot(page, "sign-in")
    sign_in(page, hone.base_url, hone.api_key)
    assert hone.api_key not in page.url
    assert page.evaluate("sessionStorage.getItem('hone.apiKey')") == hone.api_key
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    page.reload()  # the tab's session survives a reload
    page.get_by_role("link", name="Jobs").wait_for()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Project API key").wait_for()
    assert page.evaluate("sessionStorage.getItem('hone.apiKey')") is None


def test_a_wrong_key_is_refused_with_a_message(page: Any, hone: ServerProcess) -> None:
    page.goto(hone.base_url + "/ui/")
    page.get_by_label("Project API key").fill("sk-hone-not-a-key")
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "not valid" in alert.inner_text()
    assert page.evaluate("sessionStorage.getItem('hone.apiKey')") is None


def test_a_page_asked_for_before_sign_in_opens_after_it(page: Any, hone: ServerProcess) -> None:
    sign_in(page, hone.base_url, hone.api_key, "#/files")
    page.get_by_role("heading", name="Files").wait_for()
    assert page.url.endswith("#/files")


def test_every_file_carries_the_security_headers(hone: ServerProcess) -> None:
    for path in ("/ui/", "/ui/js/app.js", "/ui/css/ui.css", "/ui/vendor/uplot/uPlot.iife.min.js"):
        resp = httpx.get(hone.base_url + path)
        assert resp.status_code == 200, path
        assert resp.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert resp.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert httpx.get(hone.base_url + "/ui/../service/config.py").status_code == 404


def test_the_browser_blocks_inline_script(browser: Any, hone: ServerProcess) -> None:
    page = browser.new_page()
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if msg.type == "error" else None)
    page.goto(hone.base_url + "/ui/")
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
        " document.body.append(s); }"
    )
    assert page.evaluate("window.injected") is None
    assert any("Content Security Policy" in v for v in violations), violations
    page.close()
