"""Joining an Upload's parts into its File: one streaming pass over the parts in the order the
client gave, which the blob store turns into the File's blob (``BlobStore.compose``) while the
pass computes the sha256 of the whole content (and its md5, when the client gives one to check)
and runs the ``fine-tune`` JSONL check (line numbers count across parts). Memory: one chunk at a
time, whatever the upload's size."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from contract.blobstore import BlobStore
from service.errors import InvalidRequest
from service.files.jsonl_check import JsonlChecker
from service.uploads.service import Claim


@dataclass(frozen=True)
class Assembled:
    bytes: int
    sha256: str


class _BadContent(Exception):
    """The JSONL check found a problem: stop reading, the File is not created."""


def assemble(store: BlobStore, claim: Claim, key: str, *, md5: str | None, max_line_bytes: int) -> Assembled:
    """Write the File's blob at ``key``; raise InvalidRequest (and leave nothing at ``key``) when
    the content fails the purpose's check or does not match ``md5``."""
    sha256 = hashlib.sha256()
    digest = hashlib.md5(usedforsecurity=False) if md5 is not None else None  # only when it is checked
    checker = JsonlChecker(max_line_bytes) if claim.purpose == "fine-tune" else None
    size = 0

    def observe(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)
        sha256.update(chunk)
        if digest is not None:
            digest.update(chunk)
        if checker is not None:
            checker.feed(chunk)
            if checker.error is not None:
                raise _BadContent()

    try:
        store.compose(key, claim.part_keys, observe)
        if checker is not None:
            checker.close()
            if checker.error is not None:
                raise _BadContent()
        if size != claim.bytes:  # the parts' recorded sizes said otherwise: a blob changed underneath
            raise InvalidRequest(
                f"The parts hold {size} bytes, not the {claim.bytes} 'bytes' of Upload {claim.upload_id}.",
                param="bytes",
            )
        if md5 is not None and digest is not None and digest.hexdigest() != md5.lower():
            raise InvalidRequest(
                f"The md5 of the assembled content is {digest.hexdigest()}, not the given {md5}.", param="md5"
            )
    except _BadContent:
        store.delete(key)
        assert checker is not None and checker.error is not None
        raise InvalidRequest(
            f"Invalid file format for purpose 'fine-tune': {checker.error} "
            "Fine-tuning files must be UTF-8 JSONL with one JSON object per line.",
            param="part_ids",
            code="invalid_file_format",
        ) from None
    except BaseException:
        store.delete(key)
        raise
    return Assembled(size, sha256.hexdigest())
