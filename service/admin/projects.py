"""Projects. A project has two names: the Admin API's free-text ``name`` (``display_name``,
changed by modify) and its slug (``Project.name``), the project segment of every fine-tuned
model name it mints (``ft:{base}:{slug}:{suffix}:{id}``). The slug is fixed at creation, derived
from the first name, so renaming a project never changes or invalidates a model name."""

from __future__ import annotations

import re
import time

from sqlalchemy import ColumnElement, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import auth, ids
from service.context import AppContext
from service.db.schema import Project
from service.db.session import after_commit
from service.errors import Conflict, InvalidRequest, NotFound, shown
from service.pagination import check_limit
from service.protocol.admin import Project as ProjectObject
from service.protocol.admin import ProjectCreateParams, ProjectUpdateParams

DEFAULT_PROJECT = "default"  # the project `hone up` makes; like OpenAI's default project, never archived
MAX_NAME = 256
_SLUG_LENGTH = 48  # leaves room for "-N" when the slug is taken
_SLUG_TRIES = 5
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def to_wire(row: Project) -> ProjectObject:
    return ProjectObject(
        id=row.id,
        name=row.display_name if row.display_name is not None else row.name,
        created_at=row.created_at,
        archived_at=row.archived_at,
        status="archived" if row.archived_at is not None else "active",
    )


def slug_for(session: Session, name: str) -> str:
    """A free slug from a display name: lowercase letters and digits joined by '-', then '-2',
    '-3', ... while the slug is taken (``Project ABC`` -> ``project-abc``)."""
    base = _NOT_SLUG.sub("-", name.lower()).strip("-")[:_SLUG_LENGTH].strip("-") or "project"
    taken = set(session.scalars(select(Project.name).where(Project.name.like(f"{base}%"))))
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    assert auth.PROJECT_NAME.fullmatch(slug), slug
    return slug


def _check_name(name: str | None) -> str:
    if name is None or not name.strip():
        raise InvalidRequest("Invalid 'name': a project needs a non-empty name.", param="name")
    if len(name) > MAX_NAME:
        raise InvalidRequest(f"Invalid 'name': at most {MAX_NAME} characters, got {len(name)}.", param="name")
    return name


def _check_unsupported(external_key_id: str | None, residency: str | None = None) -> None:
    if external_key_id is not None:
        raise InvalidRequest(
            "hone does not support customer-managed encryption keys: 'external_key_id' must be omitted.",
            param="external_key_id",
        )
    if residency is not None:
        raise InvalidRequest(
            "hone keeps all data in its own deployment: 'residency' must be omitted.", param="residency"
        )


def create(session: Session, params: ProjectCreateParams) -> Project:
    name = _check_name(params.name)
    _check_unsupported(params.external_key_id, params.residency)
    for _ in range(_SLUG_TRIES):  # another replica may take the same slug between our read and insert
        row = Project(id=ids.project_id(), name=slug_for(session, name), display_name=name, created_at=int(time.time()))
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            continue
        return row
    raise Conflict(f"Could not find a free project slug for {shown(name)!r}; retry.", param="name")


def get(session: Session, project_id: str) -> Project:
    row = session.get(Project, project_id)
    if row is None:
        raise NotFound(f"No project found with id '{shown(project_id)}'.", param="project_id")
    return row


def list_projects(
    session: Session, *, after: str | None, limit: int | None, include_archived: bool
) -> tuple[list[Project], bool]:
    """Oldest first (the default project leads), by creation time then id."""
    n = check_limit(limit, 20, 100)
    where: list[ColumnElement[bool]] = [] if include_archived else [Project.archived_at.is_(None)]
    if after:
        anchor = session.get(Project, after)
        if anchor is None:
            raise InvalidRequest(f"Invalid 'after': no project with id {shown(after)!r}.", param="after")
        where.append(tuple_(Project.created_at, Project.id) > tuple_(anchor.created_at, anchor.id))
    rows = list(session.scalars(select(Project).where(*where).order_by(Project.created_at, Project.id).limit(n + 1)))
    return rows[:n], len(rows) > n


def _refuse_archived(row: Project) -> None:
    if row.archived_at is not None:
        raise InvalidRequest(f"Project {row.id} is archived and cannot be modified.", param="project_id")


def update(session: Session, project_id: str, params: ProjectUpdateParams) -> Project:
    """Renames the project (its display name); its model-name slug stays."""
    row = get(session, project_id)
    _refuse_archived(row)
    _check_unsupported(params.external_key_id)
    if "name" in params.model_fields_set:
        row.display_name = _check_name(params.name)
    return row


def archive(session: Session, ctx: AppContext, project_id: str) -> Project:
    """Archive: the project's keys stop authenticating at once on this replica (its cached keys
    are evicted) and within HONE_AUTH_CACHE_S on the others. Archiving twice is a no-op."""
    row = get(session, project_id)
    if row.name == DEFAULT_PROJECT:
        raise InvalidRequest(
            "The default project cannot be archived (hone up's key belongs to it).", param="project_id"
        )
    if row.archived_at is None:
        row.archived_at = int(time.time())
    forget_keys(session, ctx, row.id)
    return row


def forget_keys(session: Session, ctx: AppContext, project_id: str) -> None:
    """Evict the project's keys from this replica's key cache now (a lookup in flight is then
    not cached either) and again once the change has committed."""
    session.flush()
    ctx.keys.evict_project(project_id)
    after_commit(session, lambda: ctx.keys.evict_project(project_id))
