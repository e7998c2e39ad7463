"""/v1/organization — the Admin API (organization admin keys only; the request guard checks
the key): projects, their API keys and service accounts, admin API keys, and usage. Thin
routers over service.admin."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from service.admin import admin_keys, keys, projects, service_accounts, usage
from service.api.deps import Ctx, CurrentAdmin
from service.api.responses import wire
from service.errors import InvalidRequest
from service.protocol.admin import (
    AdminAPIKey,
    AdminAPIKeyCreateParams,
    AdminAPIKeyCreateResponse,
    AdminAPIKeyDeleteResponse,
    APIKeyDeleteResponse,
    Project,
    ProjectAPIKey,
    ProjectCreateParams,
    ProjectServiceAccount,
    ProjectUpdateParams,
    ServiceAccountAPIKey,
    ServiceAccountAPIKeyCreateParams,
    ServiceAccountCreateParams,
    ServiceAccountCreateResponse,
    ServiceAccountDeleteResponse,
    ServiceAccountUpdateParams,
    UsageResponse,
)
from service.protocol.common import CursorPage

router = APIRouter(prefix="/v1/organization", tags=["admin"])
Limit = Annotated[int | None, Query()]


def _query(name: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


_STRINGS = {"type": "array", "items": {"type": "string"}}
# The usage routes read their query themselves (arrays arrive as name[]=...); this documents it.
USAGE_QUERY = {
    "parameters": [
        _query("start_time", {"type": "integer"}, required=True),
        _query("end_time", {"type": "integer"}),
        _query("bucket_width", {"type": "string", "enum": list(usage.BUCKET_WIDTHS)}),
        _query("project_ids", _STRINGS),
        _query("models", _STRINGS),
        _query("group_by", {"type": "array", "items": {"type": "string", "enum": list(usage.GROUPABLE)}}),
        _query("batch", {"type": "boolean"}),
        _query("limit", {"type": "integer"}),
        _query("page", {"type": "string"}),
    ]
}


# Projects


@router.get("/projects", response_model=CursorPage[Project])
def list_projects(
    ctx: Ctx, _: CurrentAdmin, after: str | None = None, limit: Limit = None, include_archived: bool = False
) -> Response:
    with ctx.db.session() as s:
        rows, more = projects.list_projects(s, after=after, limit=limit, include_archived=include_archived)
        return wire(CursorPage.of([projects.to_wire(r) for r in rows], more))


@router.post("/projects", response_model=Project)
def create_project(params: ProjectCreateParams, ctx: Ctx, _: CurrentAdmin) -> Response:
    with ctx.db.session() as s:
        return wire(projects.to_wire(projects.create(s, params)))


@router.get("/projects/{project_id}", response_model=Project)
def retrieve_project(project_id: str, ctx: Ctx, _: CurrentAdmin) -> Response:
    with ctx.db.session() as s:
        return wire(projects.to_wire(projects.get(s, project_id)))


@router.post("/projects/{project_id}", response_model=Project)
def modify_project(project_id: str, params: ProjectUpdateParams, ctx: Ctx, _: CurrentAdmin) -> Response:
    with ctx.db.session() as s:
        return wire(projects.to_wire(projects.update(s, project_id, params)))


@router.post("/projects/{project_id}/archive", response_model=Project)
def archive_project(project_id: str, ctx: Ctx, _: CurrentAdmin) -> Response:
    with ctx.db.session() as s:
        return wire(projects.to_wire(projects.archive(s, ctx, project_id)))


# A project's API keys


@router.get("/projects/{project_id}/api_keys", response_model=CursorPage[ProjectAPIKey])
def list_api_keys(
    project_id: str,
    ctx: Ctx,
    _: CurrentAdmin,
    after: str | None = None,
    limit: Limit = None,
    owner_project_access: str | None = None,
) -> Response:
    with ctx.db.session() as s:
        project, rows, more = keys.list_keys(
            s, project_id, after=after, limit=limit, owner_project_access=owner_project_access
        )
        return wire(CursorPage.of(keys.wire_many(s, rows, project), more))


@router.get("/projects/{project_id}/api_keys/{key_id}", response_model=ProjectAPIKey)
def retrieve_api_key(project_id: str, key_id: str, ctx: Ctx, _: CurrentAdmin) -> Response:
    with ctx.db.session() as s:
        project, row, account = keys.get(s, project_id, key_id)
        return wire(keys.to_wire(row, project, account))


@router.delete("/projects/{project_id}/api_keys/{key_id}", response_model=APIKeyDeleteResponse)
def delete_api_key(project_id: str, key_id: str, ctx: Ctx, _: CurrentAdmin) -> APIKeyDeleteResponse:
    with ctx.db.session() as s:
        keys.delete(s, ctx, project_id, key_id)
    return APIKeyDeleteResponse(id=key_id)


# A project's service accounts


@router.get("/projects/{project_id}/service_accounts", response_model=CursorPage[ProjectServiceAccount])
def list_service_accounts(
    project_id: str, ctx: Ctx, _: CurrentAdmin, after: str | None = None, limit: Limit = None
) -> Response:
    with ctx.db.session() as s:
        rows, more = service_accounts.list_accounts(s, project_id, after=after, limit=limit)
        return wire(CursorPage.of([service_accounts.to_wire(r) for r in rows], more))


@router.post("/projects/{project_id}/service_accounts", response_model=ServiceAccountCreateResponse)
def create_service_account(project_id: str, params: ServiceAccountCreateParams, ctx: Ctx, _: CurrentAdmin) -> Response:
    with ctx.db.session() as s:
        return wire(service_accounts.create(s, project_id, params))


@router.get("/projects/{project_id}/service_accounts/{account_id}", response_model=ProjectServiceAccount)
def retrieve_service_account(project_id: str, account_id: str, ctx: Ctx, _: CurrentAdmin) -> Response:
    with ctx.db.session() as s:
        return wire(service_accounts.to_wire(service_accounts.get(s, project_id, account_id)))


@router.post("/projects/{project_id}/service_accounts/{account_id}", response_model=ProjectServiceAccount)
def modify_service_account(
    project_id: str, account_id: str, params: ServiceAccountUpdateParams, ctx: Ctx, _: CurrentAdmin
) -> Response:
    with ctx.db.session() as s:
        return wire(service_accounts.to_wire(service_accounts.update_account(s, project_id, account_id, params)))


@router.post("/projects/{project_id}/service_accounts/{account_id}/api_keys", response_model=ServiceAccountAPIKey)
def create_service_account_key(
    project_id: str, account_id: str, params: ServiceAccountAPIKeyCreateParams, ctx: Ctx, _: CurrentAdmin
) -> Response:
    if params.scopes:
        raise InvalidRequest(
            "hone API keys have no scopes (every key of a project can call all of its endpoints): omit 'scopes'.",
            param="scopes",
        )
    with ctx.db.session() as s:
        return wire(service_accounts.create_key(s, project_id, account_id, params.name, params.expires_in_seconds))


@router.delete("/projects/{project_id}/service_accounts/{account_id}", response_model=ServiceAccountDeleteResponse)
def delete_service_account(project_id: str, account_id: str, ctx: Ctx, _: CurrentAdmin) -> ServiceAccountDeleteResponse:
    with ctx.db.session() as s:
        service_accounts.delete(s, ctx, project_id, account_id)
    return ServiceAccountDeleteResponse(id=account_id)


# Admin API keys


@router.get("/admin_api_keys", response_model=CursorPage[AdminAPIKey])
def list_admin_api_keys(
    ctx: Ctx, _: CurrentAdmin, after: str | None = None, limit: Limit = None, order: str | None = None
) -> Response:
    with ctx.db.session() as s:
        rows, more = admin_keys.list_keys(s, after=after, limit=limit, order=order)
        return wire(CursorPage.of([admin_keys.to_wire(r) for r in rows], more))


@router.post("/admin_api_keys", response_model=AdminAPIKeyCreateResponse)
def create_admin_api_key(params: AdminAPIKeyCreateParams, ctx: Ctx, _: CurrentAdmin) -> Response:
    with ctx.db.session() as s:
        return wire(admin_keys.create(s, params))


@router.get("/admin_api_keys/{key_id}", response_model=AdminAPIKey)
def retrieve_admin_api_key(key_id: str, ctx: Ctx, _: CurrentAdmin) -> Response:
    with ctx.db.session() as s:
        return wire(admin_keys.to_wire(admin_keys.get(s, key_id)))


@router.delete("/admin_api_keys/{key_id}", response_model=AdminAPIKeyDeleteResponse)
def delete_admin_api_key(key_id: str, ctx: Ctx, _: CurrentAdmin) -> AdminAPIKeyDeleteResponse:
    with ctx.db.session() as s:
        admin_keys.delete(s, key_id)
    return AdminAPIKeyDeleteResponse(id=key_id)


# Usage


@router.get("/usage/completions", response_model=UsageResponse[Any], openapi_extra=USAGE_QUERY)
def usage_completions(request: Request, ctx: Ctx, _: CurrentAdmin) -> Response:
    query = usage.parse(request.query_params)
    with ctx.db.session() as s:
        return wire(usage.completions(s, query))


@router.get("/usage/fine_tuning", response_model=UsageResponse[Any], openapi_extra=USAGE_QUERY)
def usage_fine_tuning(request: Request, ctx: Ctx, _: CurrentAdmin) -> Response:
    """hone extension: fine-tuning jobs and trained tokens, in the usage bucket shape."""
    query = usage.parse(request.query_params)
    with ctx.db.session() as s:
        return wire(usage.fine_tuning(s, query))
