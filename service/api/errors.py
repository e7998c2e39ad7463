"""The one place where exceptions become HTTP responses in the OpenAI error envelope."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import HoneError

log = logging.getLogger(__name__)
# Pydantic puts union-branch and validator tags into error locations; they are not fields.
_TAG = re.compile(
    r"^(int|float|str|bool|none|is-instance\[.*|literal\[.*|constrained-.*|function-.*|union\[.*|tagged-union\[.*|.*\[.*\].*)$"
)


def envelope(
    status: int,
    message: str,
    type_: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        headers=headers,
        content={"error": {"message": message, "type": type_, "param": param, "code": code}},
    )


def _param(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc[1:] if not (isinstance(p, str) and _TAG.match(p))]
    return ".".join(parts) or None


def _describe(err: dict[str, Any]) -> tuple[str, str | None]:
    param = _param(tuple(err.get("loc", ())))
    kind = err.get("type", "")
    if kind == "json_invalid":
        return (
            f"We could not parse the JSON body of your request: {err.get('ctx', {}).get('error', 'invalid JSON')}.",
            None,
        )
    if kind == "missing":
        return f"Missing required parameter: '{param}'.", param
    if kind == "extra_forbidden":
        return f"Unrecognized request argument supplied: {param}", param
    if kind == "model_attributes_type" and param is None:
        return "The request body must be a JSON object.", None
    return f"Invalid value for '{param}': {err.get('msg', 'invalid value')}.", param


def response_for(exc: HoneError) -> JSONResponse:
    """The one translation of a typed error into the OpenAI envelope (routes and middleware)."""
    return envelope(exc.status_code, exc.message, exc.type, exc.param, exc.code, exc.headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(HoneError)
    async def _hone(_: Request, exc: HoneError) -> JSONResponse:
        return response_for(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = sorted(exc.errors(), key=lambda e: len(e.get("loc", ())))
        message, param = _describe(errors[0]) if errors else ("Invalid request.", None)
        return envelope(400, message, "invalid_request_error", param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return envelope(404, "Invalid URL: no such endpoint.", "invalid_request_error")
        if exc.status_code == 405:
            return envelope(405, "Method not allowed for this endpoint.", "invalid_request_error")
        return envelope(exc.status_code, str(exc.detail), "invalid_request_error")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return envelope(500, "The server had an error while processing your request. Sorry about that!", "server_error")
