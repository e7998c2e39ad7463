"""Who may send a body, and how large: checked before any of it is read.

FastAPI reads and parses a JSON body before it runs a route's dependencies, so an API-key
check in a dependency comes too late to stop a large body from an unauthenticated client. This
pure-ASGI middleware runs first: it authenticates the request from its headers (an admin key
for the Admin API and checkpoint permissions, a project API key for the rest of ``/v1``, the
attempt's report token for ``/internal/v1/jobs/{id}``), then reads the body up to the route's
limit (413 past it, before the rest is read) and hands it to the app. File uploads stream
through untouched: their receiver enforces its own limit as it writes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import auth
from service.api.errors import response_for
from service.config import Settings
from service.db.schema import AdminApiKey, Project
from service.db.session import Database
from service.errors import AuthenticationFailed, HoneError, InvalidRequest, PayloadTooLarge
from service.jobs import lifecycle

_REPORT_PATH = re.compile(r"^/internal/v1/jobs/([^/]+)/")
# Routes an organization admin key (sk-admin-...) calls instead of a project key.
ADMIN_PATHS = re.compile(r"^/v1/(organization/|fine_tuning/checkpoints/[^/]+/permissions(/|$))")
_STREAMED = {("POST", "/v1/files")}  # the upload receiver streams and limits the body itself
_STREAMED_PATHS = re.compile(r"^/v1/uploads/[^/]+/parts$")  # POST: an Upload's part, received the same way


class ClientGone(Exception):
    """The client disconnected before its body was complete."""


def body_limit(settings: Settings, method: str, path: str) -> int | None:
    """The most bytes a request body may have on this route; None: streamed, limited elsewhere."""
    if (method, path) in _STREAMED or (method == "POST" and _STREAMED_PATHS.match(path)):
        return None
    if path in ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/embeddings"):
        return settings.max_request_bytes
    if path.startswith("/internal/"):
        return settings.max_report_bytes
    return settings.max_json_bytes


class RequestGuard:
    def __init__(
        self, app: ASGIApp, db: Callable[[], Database], settings: Settings, keys: auth.KeyCache | None = None
    ) -> None:
        self.app, self.db, self.settings = app, db, settings
        self.keys = keys if keys is not None else auth.KeyCache(settings.auth_cache_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path.startswith("/v1/") or path.startswith("/internal/")):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            if "\x00" in path or b"%00" in scope.get("query_string", b""):  # PostgreSQL cannot store a NUL
                raise InvalidRequest("The URL contains a NUL character, which no id or parameter may hold.")
            await self._authenticate(scope, path, headers.get("authorization"))
            limit = body_limit(self.settings, scope["method"], path)
            if limit is not None:
                receive = await self._buffered(receive, headers.get("content-length"), limit)
        except ClientGone:
            return  # the client left mid-body: a truncated request is never handed to the app
        except HoneError as exc:
            await response_for(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope, path: str, authorization: str | None) -> None:
        if ADMIN_PATHS.match(path):  # rare calls: never cached, so a deleted admin key stops at once

            def admin() -> AdminApiKey:
                with self.db().session() as s:
                    return auth.authenticate_admin(s, authorization)

            scope.setdefault("state", {})["admin_key"] = await run_in_threadpool(admin)
            return
        if path.startswith("/v1/"):
            cached = self.keys.get(authorization)
            if cached is None:

                def project() -> Project:
                    with self.db().session() as s:
                        return auth.authenticate(s, authorization)

                cached = await run_in_threadpool(project)
                self.keys.put(authorization, cached)
            scope.setdefault("state", {})["project"] = cached
            return
        match = _REPORT_PATH.match(path)
        token = auth.bearer(authorization)
        if match is None or token is None:
            raise AuthenticationFailed("Missing job report token.")

        def allowed() -> bool:
            with self.db().session() as s:
                job = lifecycle.job_by_id(s, match.group(1))
                return job is not None and lifecycle.report_allowed(job, token)

        if not await run_in_threadpool(allowed):
            raise AuthenticationFailed("Invalid report token for this job attempt.")

    @staticmethod
    async def _buffered(receive: Receive, declared: str | None, limit: int) -> Receive:
        too_large = PayloadTooLarge(f"Request body is larger than {limit} bytes.", code="request_too_large")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            body += message.get("body", b"")
            if len(body) > limit:
                raise too_large
            if not message.get("more_body", False):
                break
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the app expects

        return replay
