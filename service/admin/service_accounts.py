"""A project's service accounts: bot identities that own API keys. Creating one returns its
first key's secret, once; deleting one revokes all its keys."""

from __future__ import annotations

import time

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service import auth, ids
from service.admin import projects
from service.context import AppContext
from service.db.schema import ApiKey, Project, ServiceAccount
from service.errors import InvalidRequest, NotFound, shown
from service.pagination import check_limit, paginate
from service.protocol.admin import (
    ProjectServiceAccount,
    ServiceAccountAPIKey,
    ServiceAccountCreateParams,
    ServiceAccountCreateResponse,
    ServiceAccountUpdateParams,
)

MAX_NAME = 256


def to_wire(row: ServiceAccount) -> ProjectServiceAccount:
    return ProjectServiceAccount(id=row.id, name=row.name, role=row.role, created_at=row.created_at)


def key_to_wire(row: ApiKey, secret: str) -> ServiceAccountAPIKey:
    return ServiceAccountAPIKey(
        id=row.id, name=row.name, value=secret, created_at=row.created_at, expires_at=row.expires_at
    )


def _check_name(name: str | None) -> str:
    if name is None or not name.strip() or len(name) > MAX_NAME:
        raise InvalidRequest(f"Invalid 'name': between 1 and {MAX_NAME} characters.", param="name")
    return name


def _live_project(session: Session, project_id: str) -> Project:
    project = projects.get(session, project_id)
    if project.archived_at is not None:
        raise InvalidRequest(
            f"Project {project.id} is archived: its service accounts cannot change.", param="project_id"
        )
    return project


def create(session: Session, project_id: str, params: ServiceAccountCreateParams) -> ServiceAccountCreateResponse:
    project = _live_project(session, project_id)
    row = ServiceAccount(
        id=ids.service_account_id(),
        project_id=project.id,
        name=_check_name(params.name),
        role="member",
        created_at=int(time.time()),
    )
    session.add(row)
    session.flush()
    key = None
    if not params.create_service_account_only:
        key_row, secret = auth.new_api_key(
            session, project, service_account=row, expires_in_s=params.expires_in_seconds
        )
        key = key_to_wire(key_row, secret)
    return ServiceAccountCreateResponse(id=row.id, name=row.name, role="member", created_at=row.created_at, api_key=key)


def get(session: Session, project_id: str, account_id: str) -> ServiceAccount:
    project = projects.get(session, project_id)
    row = session.scalar(
        select(ServiceAccount).where(
            ServiceAccount.id == account_id,
            ServiceAccount.project_id == project.id,
            ServiceAccount.deleted_at.is_(None),
        )
    )
    if row is None:
        raise NotFound(
            f"No service account found with id '{shown(account_id)}' in project {project.id}.",
            param="service_account_id",
        )
    return row


def list_accounts(
    session: Session, project_id: str, *, after: str | None, limit: int | None
) -> tuple[list[ServiceAccount], bool]:
    project = projects.get(session, project_id)
    where = [ServiceAccount.project_id == project.id, ServiceAccount.deleted_at.is_(None)]
    return paginate(session, ServiceAccount, where, after=after, limit=check_limit(limit, 20, 100), descending=False)


def update_account(
    session: Session, project_id: str, account_id: str, params: ServiceAccountUpdateParams
) -> ServiceAccount:
    _live_project(session, project_id)
    row = get(session, project_id, account_id)
    if params.name is not None:
        row.name = _check_name(params.name)
    if params.role is not None:
        row.role = params.role
    return row


def create_key(
    session: Session, project_id: str, account_id: str, name: str | None, expires_in_s: int | None
) -> ServiceAccountAPIKey:
    project = _live_project(session, project_id)
    account = get(session, project_id, account_id)
    row, secret = auth.new_api_key(
        session,
        project,
        name=_check_name(name) if name is not None else auth.DEFAULT_KEY_NAME,
        service_account=account,
        expires_in_s=expires_in_s,
    )
    return key_to_wire(row, secret)


def delete(session: Session, ctx: AppContext, project_id: str, account_id: str) -> None:
    """Delete the account and revoke its keys (they stop at once on this replica)."""
    row = get(session, project_id, account_id)
    now = int(time.time())
    row.deleted_at = now
    session.execute(
        update(ApiKey).where(ApiKey.service_account_id == row.id, ApiKey.revoked_at.is_(None)).values(revoked_at=now)
    )
    projects.forget_keys(session, ctx, row.project_id)
