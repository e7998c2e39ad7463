"""A project's API keys as the Admin API shows them: list, retrieve, delete (revoke). The
secret is never shown again; ``redacted_value`` is its first and last characters."""

from __future__ import annotations

import time

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from service.admin import projects
from service.context import AppContext
from service.db.schema import ApiKey, Project, ServiceAccount
from service.errors import NotFound, shown
from service.pagination import check_limit, paginate
from service.param_errors import invalid_choice
from service.protocol.admin import Owner, OwnerServiceAccount, ProjectAPIKey

OWNER_ACCESS = ("active", "inactive", "any")


def to_wire(row: ApiKey, project: Project, account: ServiceAccount | None) -> ProjectAPIKey:
    if account is not None:
        owner = Owner(
            type="service_account",
            service_account=OwnerServiceAccount(
                id=account.id, name=account.name, created_at=account.created_at, role=account.role
            ),
        )
    else:
        owner = Owner(type="user")
    return ProjectAPIKey(
        id=row.id,
        name=row.name,
        redacted_value=row.display,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        owner=owner,
        owner_project_access="inactive" if project.archived_at is not None else "active",
    )


def wire_many(session: Session, rows: list[ApiKey], project: Project) -> list[ProjectAPIKey]:
    account_ids = {r.service_account_id for r in rows if r.service_account_id}
    accounts = (
        {a.id: a for a in session.scalars(select(ServiceAccount).where(ServiceAccount.id.in_(account_ids)))}
        if account_ids
        else {}
    )
    return [to_wire(r, project, accounts.get(r.service_account_id or "")) for r in rows]


def _live(project_id: str) -> list[ColumnElement[bool]]:
    """Keys that still authenticate (given a live project): not revoked, not expired."""
    return [
        ApiKey.project_id == project_id,
        ApiKey.revoked_at.is_(None),
        or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > int(time.time())),
    ]


def list_keys(
    session: Session, project_id: str, *, after: str | None, limit: int | None, owner_project_access: str | None
) -> tuple[Project, list[ApiKey], bool]:
    """Oldest first. Every key of an archived project is ``inactive``, every other live key
    ``active``; without ``owner_project_access`` both are listed."""
    project = projects.get(session, project_id)
    access = owner_project_access or "any"
    if access not in OWNER_ACCESS:
        raise invalid_choice("owner_project_access", access, OWNER_ACCESS)
    if access != "any" and (access == "active") != (project.archived_at is None):
        return project, [], False
    n = check_limit(limit, 20, 100)
    rows, more = paginate(session, ApiKey, _live(project.id), after=after, limit=n, descending=False)
    return project, rows, more


def get(session: Session, project_id: str, key_id: str) -> tuple[Project, ApiKey, ServiceAccount | None]:
    project = projects.get(session, project_id)
    row = session.scalar(select(ApiKey).where(ApiKey.id == key_id, *_live(project.id)))
    if row is None:
        raise NotFound(f"No API key found with id '{shown(key_id)}' in project {project.id}.", param="api_key_id")
    account = (
        session.scalar(select(ServiceAccount).where(ServiceAccount.id == row.service_account_id))
        if row.service_account_id
        else None
    )
    return project, row, account


def delete(session: Session, ctx: AppContext, project_id: str, key_id: str) -> None:
    """Revoke: the key stops authenticating at once on this replica, within HONE_AUTH_CACHE_S
    on the others."""
    _, row, _ = get(session, project_id, key_id)
    row.revoked_at = int(time.time())
    projects.forget_keys(session, ctx, row.project_id)
