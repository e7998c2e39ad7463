"""Responses from wire models without a second validation.

A route that returns a pydantic model has FastAPI validate and serialize it again against its
``response_model`` (about an eighth of a job-list request's CPU). The wire models are built
validated, so read routes return their JSON directly; ``response_model`` stays on the route
for the OpenAPI document."""

from __future__ import annotations

from pydantic import BaseModel
from starlette.responses import Response


def wire(model: BaseModel) -> Response:
    return Response(model.model_dump_json(), media_type="application/json")
