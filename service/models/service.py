"""Models: the catalog's base models plus the project's fine-tuned and checkpoint models."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from contract import adapter_index
from contract.adapter_index import AdapterIndexEntry
from contract.blobstore import BlobStore
from service.catalog.catalog import BaseModelEntry, Catalog
from service.db.schema import FineTunedModel, Job, Project
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


def list_models(session: Session, project: Project, catalog: Catalog) -> list[Model]:
    rows = session.scalars(
        select(FineTunedModel)
        .where(FineTunedModel.project_id == project.id, FineTunedModel.deleted.is_(False))
        .order_by(FineTunedModel.seq)
    )
    return [_base(e) for e in catalog] + [_tuned(r) for r in rows]


def get(session: Session, project: Project, catalog: Catalog, name: str) -> Model:
    entry = catalog.get(name)
    if entry is not None:
        return _base(entry)
    row = _find(session, project, name)
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
        raise NotFound(f"The model '{name}' does not exist", param="model", code="model_not_found")
    row.deleted = True
    withdraw_after_commit(session, store, row.name, row.uri)


def servable_base(session: Session, project: Project, catalog: Catalog, name: str) -> str:
    """The catalog base model that serves ``name`` for this project, or 404 model_not_found."""
    if catalog.get(name) is not None:
        return name
    row = _find(session, project, name)
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
