from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.catalog.catalog import BaseModelEntry, Catalog
from service.db.schema import FineTunedModel, Project
from service.errors import NotFound, PermissionDenied, model_not_found
from service.protocol.models import Model


def _base(entry: BaseModelEntry) -> Model:
    return Model(id=entry.name, created=entry.created, owned_by=entry.owned_by)


def _tuned(row: FineTunedModel) -> Model:
    return Model(id=row.name, created=row.created_at, owned_by=row.project_id)


def _find(session: Session, project: Project, name: str) -> FineTunedModel | None:
    return session.scalar(select(FineTunedModel).where(
        FineTunedModel.name == name, FineTunedModel.project_id == project.id,
        FineTunedModel.deleted.is_(False)))


def list_models(session: Session, project: Project, catalog: Catalog) -> list[Model]:
    rows = session.scalars(select(FineTunedModel).where(
        FineTunedModel.project_id == project.id, FineTunedModel.deleted.is_(False))
        .order_by(FineTunedModel.seq))
    return [_base(e) for e in catalog] + [_tuned(r) for r in rows]


def get(session: Session, project: Project, catalog: Catalog, name: str) -> Model:
    entry = catalog.get(name)
    if entry is not None:
        return _base(entry)
    row = _find(session, project, name)
    if row is None:
        raise model_not_found(name)
    return _tuned(row)


def delete(session: Session, project: Project, catalog: Catalog, name: str) -> str:
    """Mark a fine-tuned model deleted; returns its adapter URI for the caller to remove."""
    if catalog.get(name) is not None:
        raise PermissionDenied(f"The model '{name}' is a base model and cannot be deleted; only "
                               "your project's fine-tuned models can.", param="model")
    row = _find(session, project, name)
    if row is None:
        raise NotFound(f"The model '{name}' does not exist", param="model", code="model_not_found")
    row.deleted = True
    return row.uri


def servable_base(session: Session, project: Project, catalog: Catalog, name: str) -> str:
    """The catalog base model that serves ``name`` for this project, or 404 model_not_found."""
    if catalog.get(name) is not None:
        return name
    row = _find(session, project, name)
    if row is None or catalog.get(row.base_model) is None:
        raise model_not_found(name)
    return row.base_model
