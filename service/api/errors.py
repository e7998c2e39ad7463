"""The one place where exceptions become HTTP responses in the OpenAI error envelope."""

from __future__ import annotations

import functools
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import HoneError
from service.param_errors import ParamError, describe

log = logging.getLogger(__name__)


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


@functools.cache
def _schema_of(model: type[BaseModel]) -> dict[str, Any] | None:
    try:
        return model.model_json_schema()
    except Exception:  # a type without a JSON schema: the errors' own words are used instead
        log.debug("no JSON schema for %s", model, exc_info=True)
        return None


def _body_schema(request: Request) -> dict[str, Any] | None:
    """The JSON schema of the route's body model, so a union is described by its declared
    constraints (service.param_errors)."""
    field = getattr(request.scope.get("route"), "body_field", None)
    annotation = getattr(getattr(field, "field_info", None), "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _schema_of(annotation)
    return None


def describe_validation(request: Request, exc: RequestValidationError) -> ParamError:
    errors = list(exc.errors())
    # Body errors carry the body model's schema; other sources (query, path) are described
    # from the errors alone.
    schema = _body_schema(request) if errors and tuple(errors[0].get("loc", ()))[:1] == ("body",) else None
    return describe(errors, schema=schema)


def response_for(exc: HoneError) -> JSONResponse:
    """The one translation of a typed error into the OpenAI envelope (routes and middleware)."""
    return envelope(exc.status_code, exc.message, exc.type, exc.param, exc.code, exc.headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(HoneError)
    async def _hone(_: Request, exc: HoneError) -> JSONResponse:
        return response_for(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        error = describe_validation(request, exc)
        return envelope(400, error.message, "invalid_request_error", error.param, error.code)

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
