"""FastAPI dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from service import auth
from service.context import AppContext
from service.db.schema import Project


def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]


def current_project(ctx: Ctx, authorization: Annotated[str | None, Header()] = None) -> Project:
    with ctx.db.session() as s:
        return auth.authenticate(s, authorization)


CurrentProject = Annotated[Project, Depends(current_project)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]
