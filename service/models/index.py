"""The adapter index in the blob store: one small JSON per servable fine-tuned model name,
pointing at its adapter prefix. The inference resolver reads only this, so serving needs no
route to the control plane's database; withdrawing the entry makes a name unservable."""

from __future__ import annotations

import json

from service.blobstore import BlobStore, adapter_index_key


def publish(store: BlobStore, name: str, uri: str, base_model: str) -> None:
    with store.writer(adapter_index_key(name)) as w:
        w.write(json.dumps({"name": name, "uri": uri, "base_model": base_model}).encode())
        w.commit()


def withdraw(store: BlobStore, name: str) -> None:
    store.delete(adapter_index_key(name))
