from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from service.api.deps import Ctx
from service.errors import ServiceUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(ctx: Ctx) -> dict[str, str]:
    """Ready when the database answers and every readiness check passes (the vLLM servers that
    ``hone up`` supervises); 503 with retry-after and the reasons otherwise."""
    with ctx.db.session() as s:
        s.execute(text("SELECT 1"))
    reasons = [reason for check in ctx.readiness if (reason := check())]
    if reasons:
        raise ServiceUnavailable("Not ready: " + "; ".join(reasons), code="not_ready", headers={"retry-after": "5"})
    return {"status": "ready"}
