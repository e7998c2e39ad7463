"""/v1/fine_tuning/alpha/graders/run and /validate — thin router over service.evals.graders."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/fine_tuning/alpha/graders", tags=["graders"])
