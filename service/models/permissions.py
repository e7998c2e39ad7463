"""Checkpoint permissions: an organization admin shares a fine-tuned model (a job's final model
or one of its checkpoints) with other projects. A project it is shared with may serve the model
and fine-tune from it (service/models/service.py ``usable``); it sees nothing else of the
owner's: files, jobs, events and checkpoints stay filtered on their own project. Revoking
deletes the permission; the next request no longer finds it."""

from __future__ import annotations

import time
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import ids
from service.catalog.catalog import Catalog
from service.db.schema import CheckpointPermission, FineTunedModel, Project
from service.errors import InvalidRequest, NotFound, shown
from service.pagination import check_limit, paginate
from service.protocol.checkpoint_permissions import PermissionCreateResponse

MAX_PROJECT_IDS = 100  # per create request
PATH_PARAM = "fine_tuned_model_checkpoint"


def _shareable(session: Session, catalog: Catalog, name: str) -> FineTunedModel:
    """The live fine-tuned model ``name``, whichever project owns it (the caller is an admin)."""
    if catalog.get(name) is not None:
        raise InvalidRequest(
            f"'{shown(name)}' is a base model, which every project can use already; "
            "only fine-tuned models and their checkpoints are shared.",
            param=PATH_PARAM,
            code="model_not_shareable",
        )
    row = session.scalar(select(FineTunedModel).where(FineTunedModel.name == name, FineTunedModel.deleted.is_(False)))
    if row is None:
        raise NotFound(
            f"The fine-tuned model checkpoint '{shown(name)}' does not exist.",
            param=PATH_PARAM,
            code="model_not_found",
        )
    return row


def _grantee(session: Session, model: FineTunedModel, project_id: object, param: str) -> Project:
    if not isinstance(project_id, str) or not project_id:
        raise InvalidRequest(f"Invalid '{param}': expected a project id (proj_...).", param=param)
    project = session.get(Project, project_id)
    if project is None:
        raise InvalidRequest(
            f"Invalid '{param}': no project with id '{shown(project_id)}'.", param=param, code="project_not_found"
        )
    if project.archived_at is not None:
        raise InvalidRequest(
            f"Invalid '{param}': project '{project_id}' is archived; a model cannot be shared with it.",
            param=param,
            code="project_archived",
        )
    if project.id == model.project_id:
        raise InvalidRequest(
            f"Invalid '{param}': project '{project_id}' owns '{model.name}' already; share it with other projects.",
            param=param,
            code="project_owns_model",
        )
    return project


def _existing(session: Session, model: str, project_id: str) -> CheckpointPermission | None:
    return session.scalar(
        select(CheckpointPermission).where(
            CheckpointPermission.model_name == model, CheckpointPermission.project_id == project_id
        )
    )


def create(session: Session, catalog: Catalog, name: str, project_ids: list[str]) -> list[CheckpointPermission]:
    """Share ``name`` with each project (all or none: one bad id refuses the request). A project
    it is shared with already keeps its permission, which is returned again."""
    model = _shareable(session, catalog, name)
    if not project_ids:
        raise InvalidRequest("'project_ids' must name at least one project.", param="project_ids")
    if len(project_ids) > MAX_PROJECT_IDS:
        raise InvalidRequest(
            f"'project_ids' names {len(project_ids)} projects; at most {MAX_PROJECT_IDS} per request.",
            param="project_ids",
        )
    grantees: dict[str, Project] = {}
    for i, pid in enumerate(project_ids):
        project = _grantee(session, model, pid, f"project_ids[{i}]")
        grantees.setdefault(project.id, project)
    return [_grant(session, model.name, pid) for pid in grantees]


def _grant(session: Session, model: str, project_id: str) -> CheckpointPermission:
    row = _existing(session, model, project_id)
    if row is not None:
        return row
    row = CheckpointPermission(
        id=ids.checkpoint_permission_id(), model_name=model, project_id=project_id, created_at=int(time.time())
    )
    try:
        with session.begin_nested():  # a concurrent request may grant the same pair first
            session.add(row)
    except IntegrityError:
        again = _existing(session, model, project_id)
        if again is None:
            raise
        return again
    return row


def list_permissions(
    session: Session,
    catalog: Catalog,
    name: str,
    *,
    project_id: str | None,
    after: str | None,
    limit: int | None,
    order: Literal["ascending", "descending"] | None,
) -> tuple[list[CheckpointPermission], bool]:
    model = _shareable(session, catalog, name)
    where: list[Any] = [CheckpointPermission.model_name == model.name]
    if project_id is not None:
        where.append(CheckpointPermission.project_id == project_id)
    return paginate(
        session,
        CheckpointPermission,
        where,
        after=after,
        limit=check_limit(limit, 10, 100),
        descending=order != "ascending",
    )


def delete(session: Session, name: str, permission_id: str) -> None:
    """Revoke: the project it was shared with loses the model on its next request. Works also
    when the model itself has been deleted since (the permission is then moot, but listed nowhere)."""
    row = session.scalar(
        select(CheckpointPermission).where(
            CheckpointPermission.id == permission_id, CheckpointPermission.model_name == name
        )
    )
    if row is None:
        raise NotFound(
            f"No checkpoint permission '{shown(permission_id)}' on the model '{shown(name)}'.",
            param="permission_id",
            code="permission_not_found",
        )
    session.delete(row)


def to_wire(row: CheckpointPermission) -> PermissionCreateResponse:
    return PermissionCreateResponse(id=row.id, created_at=row.created_at, project_id=row.project_id)
