"""Blob storage for uploads, checkpoints and adapters: the protocol (``base``) and one module
per backend, picked by the URL's scheme from ``BACKENDS`` (an import path per scheme, so no
backend imports this factory and a new backend is one module plus one line here).

- ``file:///abs/path``: a local directory (the embedded default), ``contract.blobstore.local``;
- ``s3://bucket/prefix``: S3 or any S3-compatible store via boto3, ``contract.blobstore.s3``.
"""

from __future__ import annotations

import importlib
from urllib.parse import urlparse

from contract.blobstore.base import (
    CHUNK,
    BlobNotFound,
    BlobStore,
    BlobWriter,
    check_key,
    read_bytes,
    write_bytes,
)

BACKENDS: dict[str, str] = {
    "file": "contract.blobstore.local:LocalBlobStore",
    "s3": "contract.blobstore.s3:S3BlobStore",
}

__all__ = [
    "BACKENDS",
    "CHUNK",
    "BlobNotFound",
    "BlobStore",
    "BlobWriter",
    "check_key",
    "open_blobstore",
    "read_bytes",
    "write_bytes",
]


def open_blobstore(url: str) -> BlobStore:
    scheme = urlparse(url).scheme
    target = BACKENDS.get(scheme)
    if target is None:
        supported = ", ".join(f"{s}://" for s in BACKENDS)
        raise ValueError(f"unsupported storage URL scheme {scheme!r} (supported: {supported})")
    module, _, cls = target.partition(":")
    store: BlobStore = getattr(importlib.import_module(module), cls)(url)
    return store
