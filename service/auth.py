"""Projects and API keys. A key is shown once at creation and stored only as its sha256
(keys are 192-bit random, so a fast hash is the right tool; no password stretching needed)."""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections import OrderedDict

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from service import ids
from service.db.schema import AdminApiKey, ApiKey, Project, ServiceAccount
from service.errors import AuthenticationFailed, InvalidRequest, PermissionDenied

KEY_PREFIX = "sk-hone-"
ADMIN_KEY_PREFIX = "sk-admin-"
PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9\-_]{0,62}$")  # the project segment of model names
DEFAULT_KEY_NAME = "Secret key"
LAST_USED_RESOLUTION_S = 60  # last_used_at is written at most once a minute per key
EVICTION_GRACE_S = 10.0  # how long a key lookup may have been in flight when its project was evicted


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def get_or_create_project(session: Session, name: str) -> Project:
    if not PROJECT_NAME.fullmatch(name):
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


def new_api_key(
    session: Session,
    project: Project,
    *,
    name: str = DEFAULT_KEY_NAME,
    service_account: ServiceAccount | None = None,
    expires_in_s: int | None = None,
) -> tuple[ApiKey, str]:
    """A new project API key: the row (its public id ``key_...``) and the secret, shown once.
    Owned by ``service_account``, or else by a user (the operator who ran ``hone keys create``)."""
    secret = KEY_PREFIX + secrets.token_urlsafe(24)
    now = int(time.time())
    row = ApiKey(
        id=ids.api_key_id(),
        name=name,
        project_id=project.id,
        service_account_id=service_account.id if service_account else None,
        key_hash=hash_secret(secret),
        display=f"{secret[:10]}...{secret[-4:]}",
        created_at=now,
        expires_at=now + expires_in_s if expires_in_s is not None else None,
    )
    session.add(row)
    session.flush()
    return row, secret


def create_api_key(session: Session, project: Project, *, name: str = DEFAULT_KEY_NAME) -> str:
    return new_api_key(session, project, name=name)[1]


def create_admin_key(session: Session, name: str, expires_in_s: int | None = None) -> tuple[AdminApiKey, str]:
    """A new organization admin key: the row, and the secret (shown once, stored as its hash)."""
    secret = ADMIN_KEY_PREFIX + secrets.token_urlsafe(24)
    now = int(time.time())
    row = AdminApiKey(
        id=ids.admin_key_id(),
        name=name,
        key_hash=hash_secret(secret),
        redacted_value=f"{secret[:12]}...{secret[-4:]}",
        created_at=now,
        expires_at=now + expires_in_s if expires_in_s is not None else None,
    )
    session.add(row)
    session.flush()
    return row, secret


def has_admin_key(session: Session) -> bool:
    return session.scalar(select(AdminApiKey.seq).limit(1)) is not None


def bearer(authorization: str | None) -> str | None:
    """The credential of an ``Authorization: Bearer ...`` header, or None."""
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    return authorization[7:].strip() or None


def _secret(authorization: str | None) -> str:
    secret = bearer(authorization)
    if secret is None:
        raise AuthenticationFailed(
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
    return secret


def _incorrect(secret: str) -> AuthenticationFailed:
    shown = f"{secret[:6]}***{secret[-4:]}" if len(secret) > 12 else "***"
    return AuthenticationFailed(f"Incorrect API key provided: {shown}.", code="invalid_api_key")


def authenticate(session: Session, authorization: str | None) -> Project:
    """The project of a live project key; an archived project's keys no longer authenticate."""
    secret = _secret(authorization)
    found = session.execute(
        select(Project, ApiKey.seq, ApiKey.last_used_at)
        .join(ApiKey, ApiKey.project_id == Project.id)
        .where(
            ApiKey.key_hash == hash_secret(secret),
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > int(time.time())),
            Project.archived_at.is_(None),
        )
    ).one_or_none()
    if found is None:
        if secret.startswith(ADMIN_KEY_PREFIX) and _admin_row(session, secret) is not None:
            raise PermissionDenied(
                "An admin key can only call the Admin API (/v1/organization/...) and checkpoint "
                "permissions; use a project API key for this endpoint.",
                code="invalid_api_key",
            )
        raise _incorrect(secret)
    project, seq, last_used_at = found
    _touch(session, ApiKey, seq, last_used_at)
    return project


def _touch(session: Session, table: type[ApiKey] | type[AdminApiKey], seq: int, last_used_at: int | None) -> None:
    """Record a key's use, at most once per ``LAST_USED_RESOLUTION_S`` (a write per minute, not per call)."""
    now = int(time.time())
    if last_used_at is None or now - last_used_at >= LAST_USED_RESOLUTION_S:
        session.execute(update(table).where(table.seq == seq).values(last_used_at=now))


def _admin_row(session: Session, secret: str) -> AdminApiKey | None:
    return session.scalar(select(AdminApiKey).where(AdminApiKey.key_hash == hash_secret(secret)))


def authenticate_admin(session: Session, authorization: str | None) -> AdminApiKey:
    """The admin key of an Admin API request; a project key gets a 403 that says what is needed."""
    secret = _secret(authorization)
    row = _admin_row(session, secret)
    if row is None:
        if session.scalar(select(ApiKey.seq).where(ApiKey.key_hash == hash_secret(secret))) is not None:
            raise PermissionDenied(
                "This endpoint needs an organization admin key (sk-admin-...); a project API key "
                "cannot manage projects, keys or checkpoint permissions.",
                code="insufficient_permissions",
            )
        raise _incorrect(secret)
    if row.expires_at is not None and row.expires_at <= time.time():
        raise AuthenticationFailed(f"This admin key ({row.redacted_value}) has expired.", code="invalid_api_key")
    _touch(session, AdminApiKey, row.seq, row.last_used_at)
    return row


class KeyCache:
    """Authenticated keys remembered for ``ttl_s`` seconds, so a busy client does not cost a
    database lookup per request; a revoked key stops working within ``ttl_s`` (0 disables it).
    Bounded: the oldest entries go first. Only successes are cached, so a wrong key always
    reaches the database (and its message)."""

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self._entries: OrderedDict[str, tuple[float, Project]] = OrderedDict()
        self._lock = threading.Lock()  # the guard puts on the event loop; routes evict from threads
        # Projects evicted lately: a lookup that was in flight when they were evicted is not cached.
        self._evicted: dict[str, float] = {}

    def get(self, authorization: str | None) -> Project | None:
        if self.ttl_s <= 0 or authorization is None:
            return None
        hit = self._entries.get(authorization)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, authorization: str | None, project: Project) -> None:
        if self.ttl_s <= 0 or authorization is None:
            return
        with self._lock:
            if self._evicted and self._evicted.get(project.id, 0.0) > time.monotonic():
                return
            self._entries[authorization] = (time.monotonic() + self.ttl_s, project)
            self._entries.move_to_end(authorization)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def evict_project(self, project_id: str) -> None:
        """Forget every key of a project (archived, or one of its keys revoked): its next call
        on this replica reaches the database."""
        with self._lock:
            now = time.monotonic()
            self._evicted = {p: t for p, t in self._evicted.items() if t > now}
            self._evicted[project_id] = now + self.ttl_s + EVICTION_GRACE_S
            for authorization in [a for a, (_, p) in self._entries.items() if p.id == project_id]:
                del self._entries[authorization]
