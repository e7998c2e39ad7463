from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from service.api.deps import Ctx

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(ctx: Ctx) -> dict[str, str]:
    """Ready when the database answers (503 with retry-after when it does not)."""
    with ctx.db.session() as s:
        s.execute(text("SELECT 1"))
    return {"status": "ready"}
