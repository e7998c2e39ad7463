"""The web dashboard: a small static app under ``/ui/`` that calls hone's public API.

Nothing is built at install or run time and nothing comes from another origin: the pages are
ES modules and CSS in ``static/``, the chart library is vendored by ``scripts/vendor_ui.py``.
Every response under ``/ui/`` carries a Content-Security-Policy that allows scripts, styles and
connections from this origin only (no inline script or style attribute), and the browser keeps
the project API key in its session storage: the server holds no session and serves the same
files to everyone; what a page shows comes from ``/v1`` with the key it sends.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PATH = "/ui"
STATIC_DIR = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    # Revalidated on every load (ETag): an upgraded hone serves its new pages at once.
    "cache-control": "no-cache",
}


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` to every response of the wrapped app, its errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except HTTPException as exc:  # StaticFiles' 404/405: answered here, so it gets the headers too
            response = PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=exc.headers)
            await response(scope, receive, send_with_headers)


def mount(app: FastAPI) -> None:
    """Serve the dashboard at ``/ui/``; ``/`` and ``/ui`` redirect there."""
    app.mount(PATH, SecurityHeaders(StaticFiles(directory=STATIC_DIR, html=True)), name="ui")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(PATH + "/")

    @app.get(PATH, include_in_schema=False)
    def ui_without_slash() -> RedirectResponse:
        return RedirectResponse(PATH + "/")
