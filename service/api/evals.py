"""/v1/evals, /v1/evals/{id}/runs and their output items — thin router over service.evals."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["evals"])
