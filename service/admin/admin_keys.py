"""Organization admin keys (``sk-admin-...``) through the Admin API: list, create (the secret
is returned once), retrieve, delete. A deleted key stops at once: admin calls are never cached.
When none is left, ``hone admin-keys create`` (or the next ``hone serve``/``hone up``) makes one."""

from __future__ import annotations

from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import auth
from service.db.schema import AdminApiKey
from service.errors import InvalidRequest, NotFound, shown
from service.pagination import check_limit, paginate
from service.param_errors import invalid_choice
from service.protocol.admin import AdminAPIKey, AdminAPIKeyCreateParams, AdminAPIKeyCreateResponse

MAX_NAME = 256


def to_wire(row: AdminApiKey) -> AdminAPIKey:
    return AdminAPIKey(
        id=row.id,
        name=row.name,
        redacted_value=row.redacted_value,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
    )


def create(session: Session, params: AdminAPIKeyCreateParams) -> AdminAPIKeyCreateResponse:
    if not params.name.strip() or len(params.name) > MAX_NAME:
        raise InvalidRequest(f"Invalid 'name': between 1 and {MAX_NAME} characters.", param="name")
    row, secret = auth.create_admin_key(session, params.name, params.expires_in_seconds)
    return AdminAPIKeyCreateResponse(**to_wire(row).model_dump(), value=secret)


def get(session: Session, key_id: str) -> AdminApiKey:
    row = session.scalar(select(AdminApiKey).where(AdminApiKey.id == key_id))
    if row is None:
        raise NotFound(f"No admin API key found with id '{shown(key_id)}'.", param="key_id")
    return row


def list_keys(
    session: Session, *, after: str | None, limit: int | None, order: str | None
) -> tuple[list[AdminApiKey], bool]:
    if order not in (None, "asc", "desc"):
        raise invalid_choice("order", order, ["asc", "desc"])
    n = check_limit(limit, 20, 100)
    return paginate(session, AdminApiKey, [], after=after, limit=n, descending=order == "desc")


def delete(session: Session, key_id: str) -> None:
    row = get(session, key_id)
    session.execute(sql_delete(AdminApiKey).where(AdminApiKey.seq == row.seq))
