"""The adapter index in the blob store: one small JSON per servable fine-tuned model name,
pointing at its adapter prefix. The control plane publishes an entry when a model comes into
being and withdraws it when the model is deleted or pruned; the inference resolver reads only
this, so serving needs no route to the control plane's database."""

from __future__ import annotations

from pydantic import BaseModel

from contract.blobstore import BlobStore, read_bytes, write_bytes
from contract.layout import adapter_index_key


class AdapterIndexEntry(BaseModel):
    name: str  # the fine-tuned model name
    uri: str  # blob URI of the adapter directory (manifest.json inside)
    base_model: str


def publish(store: BlobStore, entry: AdapterIndexEntry) -> None:
    write_bytes(store, adapter_index_key(entry.name), entry.model_dump_json().encode())


def withdraw(store: BlobStore, name: str) -> None:
    store.delete(adapter_index_key(name))


def lookup(store: BlobStore, name: str) -> AdapterIndexEntry:
    """The entry for ``name``; ``BlobNotFound`` when none is published."""
    return AdapterIndexEntry.model_validate_json(read_bytes(store, adapter_index_key(name)))
