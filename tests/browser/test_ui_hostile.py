"""The dashboard against hostile addresses: a hash route that is not valid percent-encoding, an id
made of dot segments (which the browser's URL parser would resolve into another /v1 endpoint),
and the security headers on what /ui/ does not have (a 404 carries them too)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.ui import CONTENT_SECURITY_POLICY
from tests.harness.browser import needs_browser, sign_in
from tests.harness.process import ServerProcess

pytestmark = [*needs_browser(), pytest.mark.db_incidental]


def test_a_404_under_ui_carries_the_security_headers(hone: ServerProcess) -> None:
    for path in ("/ui/nope.js", "/ui/js/", "/ui/%2e%2e/service/config.py"):
        resp = httpx.get(hone.base_url + path)
        assert resp.status_code == 404, path
        assert resp.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert resp.headers["x-content-type-options"] == "nosniff", path
        assert resp.headers["referrer-policy"] == "no-referrer", path


def test_a_malformed_hash_route_goes_to_the_jobs(page: Any, hone: ServerProcess) -> None:
    sign_in(page, hone.base_url, hone.api_key)
    for route in ("#/jobs/%", "#/evals/%E0%A4%A"):
        page.goto(f"{hone.base_url}/ui/{route}")
        page.get_by_role("heading", name="Fine-tuning jobs").wait_for()
        page.wait_for_function("window.location.hash === '#/jobs'")


def test_a_dot_segment_id_never_reaches_another_endpoint(page: Any, hone: ServerProcess) -> None:
    sign_in(page, hone.base_url, hone.api_key)
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if "/v1/" in r.url else None)
    for route in ("#/jobs/%2e%2e", "#/jobs/.", "#/evals/%2E."):
        page.goto(f"{hone.base_url}/ui/{route}")
        alert = page.get_by_role("alert").first
        alert.wait_for()
        assert "not a valid id" in alert.inner_text()
    assert not [u for u in seen if "/v1/fine_tuning/" in u or "/v1/evals" in u], seen
