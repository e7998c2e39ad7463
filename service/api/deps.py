"""FastAPI dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from service import auth
from service.context import AppContext
from service.db.schema import AdminApiKey, Project


def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]


def current_project(request: Request, ctx: Ctx, authorization: Annotated[str | None, Header()] = None) -> Project:
    """The caller's project: authenticated by the request guard before the body was read
    (service/api/guard.py), or here when the guard is not in front (unit tests)."""
    project = getattr(request.state, "project", None)
    if isinstance(project, Project):
        return project
    with ctx.db.session() as s:
        return auth.authenticate(s, authorization)


CurrentProject = Annotated[Project, Depends(current_project)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


def current_admin(request: Request, ctx: Ctx, authorization: Annotated[str | None, Header()] = None) -> AdminApiKey:
    """The organization admin key of an Admin API call: authenticated by the request guard, or
    here when the guard is not in front (unit tests)."""
    key = getattr(request.state, "admin_key", None)
    if isinstance(key, AdminApiKey):
        return key
    with ctx.db.session() as s:
        return auth.authenticate_admin(s, authorization)


CurrentAdmin = Annotated[AdminApiKey, Depends(current_admin)]
