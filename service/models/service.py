"""Models: the catalog's base models, the project's fine-tuned and checkpoint models, and the
ones other projects shared with it (checkpoint permissions, service/models/permissions.py).

A shared model is looked up on every request (nothing caches a grant), so a revoked permission
stops serving, listing and fine-tuning from the model on the next request."""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from contract import adapter_index
from contract.adapter_index import AdapterIndexEntry
from contract.blobstore import BlobStore
from service.catalog.catalog import BaseModelEntry, Catalog
from service.db.schema import CheckpointPermission, FineTunedModel, Job, Project
from service.db.session import after_commit
from service.errors import NotFound, PermissionDenied, model_not_found
from service.protocol.models import Model


def _base(entry: BaseModelEntry) -> Model:
    return Model(id=entry.name, created=entry.created, owned_by=entry.owned_by)


def _tuned(row: FineTunedModel) -> Model:
    return Model(id=row.name, created=row.created_at, owned_by=row.project_id)


def _find(session: Session, project: Project, name: str) -> FineTunedModel | None:
    return session.scalar(
        select(FineTunedModel).where(
            FineTunedModel.name == name, FineTunedModel.project_id == project.id, FineTunedModel.deleted.is_(False)
        )
    )


def _visible(project: Project) -> ColumnElement[bool]:
    """A live fine-tuned model the project owns or that is shared with it."""
    shared = select(CheckpointPermission.model_name).where(CheckpointPermission.project_id == project.id)
    return FineTunedModel.deleted.is_(False) & or_(
        FineTunedModel.project_id == project.id, FineTunedModel.name.in_(shared)
    )


def usable(session: Session, project: Project, name: str) -> FineTunedModel | None:
    """The fine-tuned model ``name`` if the project may serve it and fine-tune from it: its own,
    or one shared with it by a checkpoint permission. None otherwise."""
    return session.scalar(select(FineTunedModel).where(FineTunedModel.name == name, _visible(project)))


def list_models(session: Session, project: Project, catalog: Catalog) -> list[Model]:
    rows = session.scalars(select(FineTunedModel).where(_visible(project)).order_by(FineTunedModel.seq))
    return [_base(e) for e in catalog] + [_tuned(r) for r in rows]


def get(session: Session, project: Project, catalog: Catalog, name: str) -> Model:
    entry = catalog.get(name)
    if entry is not None:
        return _base(entry)
    row = usable(session, project, name)
    if row is None:
        raise model_not_found(name)
    return _tuned(row)


def delete(session: Session, store: BlobStore, project: Project, catalog: Catalog, name: str) -> None:
    """Mark a fine-tuned model deleted (the row stays, so the name is never reused); once that
    is committed it is withdrawn from serving and its weights are removed."""
    if catalog.get(name) is not None:
        raise PermissionDenied(
            f"The model '{name}' is a base model and cannot be deleted; only your project's fine-tuned models can.",
            param="model",
        )
    row = _find(session, project, name)
    if row is None:
        if usable(session, project, name) is not None:
            raise PermissionDenied(
                f"The model '{name}' is shared with your project by the project that owns it; "
                "only that project can delete it.",
                param="model",
            )
        raise NotFound(f"The model '{name}' does not exist", param="model", code="model_not_found")
    row.deleted = True
    withdraw_after_commit(session, store, row.name, row.uri)


def servable_base(session: Session, project: Project, catalog: Catalog, name: str) -> str:
    """The catalog base model that serves ``name`` for this project (its own fine-tuned models and
    those shared with it), or 404 model_not_found."""
    if catalog.get(name) is not None:
        return name
    row = usable(session, project, name)
    if row is None or catalog.get(row.base_model) is None:
        raise model_not_found(name)
    return row.base_model


def publish(session: Session, store: BlobStore, job: Job, name: str, uri: str, kind: str, now: int) -> None:
    """Register a servable model name for the project and put it in the adapter index."""
    session.add(
        FineTunedModel(
            name=name,
            project_id=job.project_id,
            job_id=job.id,
            base_model=job.base_model,
            kind=kind,
            uri=uri,
            created_at=now,
        )
    )
    adapter_index.publish(store, AdapterIndexEntry(name=name, uri=uri, base_model=job.base_model))


def withdraw_after_commit(session: Session, store: BlobStore, name: str, uri: str) -> None:
    """Once the commit has made ``name`` deleted: take it out of serving, then remove its weights."""

    def effect() -> None:
        adapter_index.withdraw(store, name)
        try:
            store.delete_prefix(store.key_from_uri(uri))
        except ValueError:
            pass  # an adapter outside this store (e.g. imported): nothing of ours to remove

    after_commit(session, effect)
