"""The local-directory blob store (``file:///abs/path``): the embedded default.

A write goes to a temporary file beside its target, is fsynced and renamed into place on
``commit()``, so a reader never sees a partial blob.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlparse

from contract.blobstore.base import CHUNK, BlobNotFound, UriScheme, check_key, compose_through

_TMP_PREFIX, _TMP_SUFFIX = ".tmp-", ".part"  # a writer's file until it commits


class _LocalWriter:
    def __init__(self, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        self._final = final
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX)
        self._tmp = Path(tmp)
        self._fh = os.fdopen(fd, "wb")
        self._done = False

    def write(self, data: bytes) -> None:
        self._fh.write(data)

    def commit(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self._final)
        self._done = True

    def abort(self) -> None:
        if not self._done:
            self._fh.close()
            self._tmp.unlink(missing_ok=True)
            self._done = True

    def __enter__(self) -> _LocalWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if et is not None or not self._done:
            self.abort()


class LocalBlobStore(UriScheme):
    """A directory on local disk (``file:///abs/path``)."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "file":
            raise ValueError(f"not a file:// URL: {url}")
        self.root = Path(unquote(parsed.path)).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def writer(self, key: str) -> _LocalWriter:
        return _LocalWriter(self._path(key))

    def read(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        path = self._path(key)
        try:
            fh = path.open("rb")
        except FileNotFoundError as e:
            raise BlobNotFound(key) from e
        with fh:
            while chunk := fh.read(chunk_size):
                yield chunk

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as e:
            raise BlobNotFound(key) from e

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix.rstrip("/")), ignore_errors=True)

    def sweep_incomplete(self, older_than_s: float) -> int:
        """Temporary files of writers that never committed or aborted (the process died); a live
        writer's file is written to, so its modification time stays recent."""
        cutoff, removed = time.time() - older_than_s, 0
        for part in self.root.rglob(f"{_TMP_PREFIX}*{_TMP_SUFFIX}"):
            try:
                if part.stat().st_mtime <= cutoff:
                    part.unlink()
                    removed += 1
            except FileNotFoundError:
                pass  # committed or aborted meanwhile
        return removed

    def compose(self, key: str, sources: Sequence[str], observe: Callable[[bytes], None]) -> None:
        """The part files are read once, observed and appended to one temporary file that is
        renamed into place (the data has to pass through to be observed, so no copy_file_range)."""
        compose_through(self, key, sources, observe)
