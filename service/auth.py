"""Projects and API keys. A key is shown once at creation and stored only as its sha256
(keys are 192-bit random, so a fast hash is the right tool; no password stretching needed)."""

from __future__ import annotations

import hashlib
import re
import secrets
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from service import ids
from service.db.schema import ApiKey, Project
from service.errors import AuthenticationFailed, InvalidRequest

KEY_PREFIX = "sk-hone-"
_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9\-_]{0,62}$")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def get_or_create_project(session: Session, name: str) -> Project:
    if not _PROJECT_NAME.fullmatch(name):
        raise InvalidRequest(
            f"Invalid project name {name!r}: use lowercase letters, digits, '-' and '_' (at most 63 characters)",
            param="project",
        )
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        project = Project(id=ids.project_id(), name=name, created_at=int(time.time()))
        session.add(project)
        session.flush()
    return project


def create_api_key(session: Session, project: Project) -> str:
    secret = KEY_PREFIX + secrets.token_urlsafe(24)
    session.add(
        ApiKey(
            project_id=project.id,
            key_hash=hash_secret(secret),
            display=f"{secret[:10]}...{secret[-4:]}",
            created_at=int(time.time()),
        )
    )
    return secret


def bearer(authorization: str | None) -> str | None:
    """The credential of an ``Authorization: Bearer ...`` header, or None."""
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    return authorization[7:].strip() or None


def authenticate(session: Session, authorization: str | None) -> Project:
    secret = bearer(authorization)
    if secret is None:
        raise AuthenticationFailed(
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
    row = session.execute(
        select(Project)
        .join(ApiKey, ApiKey.project_id == Project.id)
        .where(ApiKey.key_hash == hash_secret(secret), ApiKey.revoked_at.is_(None))
    ).scalar_one_or_none()
    if row is None:
        shown = f"{secret[:6]}***{secret[-4:]}" if len(secret) > 12 else "***"
        raise AuthenticationFailed(f"Incorrect API key provided: {shown}.", code="invalid_api_key")
    return row
