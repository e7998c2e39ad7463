"""The rows of an eval run's data source (``data_source.source``), read and checked one at a
time: ``file_content`` from the stored request, ``file_id`` streamed line by line from the blob
store (a file is never held whole in memory). Rows are checked by the same code that checks
``file_content`` at creation (service.evals.data_sources: the item against the eval's item
schema, a sample where the criteria read one); a bad row fails the run with the row named
(``DataSourceError``)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from contract.blobstore import BlobNotFound
from service.context import AppContext
from service.db.schema import File
from service.errors import InvalidRequest
from service.evals import data_sources
from service.evals.data_sources import RowChecker
from service.protocol import evals as wire


class DataSourceError(Exception):
    """The run cannot go on with its data source: it fails with this ``code`` and ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Row:
    index: int  # the output item's datasource_item_id: the row's 0-based position among the items
    item: dict[str, Any]
    sample: dict[str, Any] | None


Reader = Callable[[RowChecker], Iterator[data_sources.Row]]


def _file_content(ctx: AppContext, project_id: str, source: Any) -> Reader:
    content: list[wire.FileContentRow] = source.content

    def read(checker: RowChecker) -> Iterator[data_sources.Row]:
        for i, line in enumerate(content):
            row = data_sources.Row(item=line.item, sample=line.sample)
            problem = checker.problem(row)
            if problem is not None:
                field, message = problem
                raise DataSourceError(
                    "invalid_data_source", f"Invalid 'data_source.source.content[{i}].{field}': {message}."
                )
            yield row

    return read


def _file_id(ctx: AppContext, project_id: str, source: Any) -> Reader:
    file_id: str = source.id
    with ctx.db.session() as s:
        key = s.scalar(select(File.storage_key).where(File.id == file_id, File.project_id == project_id))
    gone = DataSourceError("file_not_found", f"The file {file_id} (data_source.source.id) was deleted.")
    if key is None:
        raise gone
    max_line = ctx.settings.max_line_bytes

    def read(checker: RowChecker) -> Iterator[data_sources.Row]:
        try:
            for n, line in _lines(ctx.store.read(key), max_line, file_id):
                if not line.strip():
                    continue  # blank lines (a trailing one) are not items
                try:
                    yield data_sources.parse_line(line, n, checker)
                except InvalidRequest as e:
                    raise DataSourceError("invalid_data_source", f"{e.message} (file {file_id})") from None
        except BlobNotFound:
            raise gone from None

    return read


SOURCES: dict[str, Callable[[AppContext, str, Any], Reader]] = {
    "file_content": _file_content,
    "file_id": _file_id,
}


def _lines(chunks: Iterable[bytes], max_line_bytes: int, file_id: str) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line) from a stream of chunks, holding at most one line and one
    chunk at a time."""
    n, rest = 0, b""
    for chunk in chunks:
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        for line in parts:
            n += 1
            yield n, line
        if len(rest) > max_line_bytes:
            raise DataSourceError(
                "invalid_data_source",
                f"Line {n + 1} of the data source file {file_id} is longer than {max_line_bytes} bytes.",
            )
    if rest:
        yield n + 1, rest


@dataclass(frozen=True)
class ItemSource:
    """A run's rows, readable any number of times (a first pass counts and checks them all, the
    second executes them)."""

    reader: Reader
    checker: RowChecker
    max_items: int

    def rows(self) -> Generator[Row, None, None]:
        for index, row in enumerate(self.reader(self.checker)):
            if index >= self.max_items:
                raise DataSourceError(
                    "invalid_data_source",
                    f"The data source has more than {self.max_items} items, the most one run may have "
                    "(the server's HONE_EVALS__MAX_ITEMS).",
                )
            yield Row(index=index, item=row.item, sample=row.sample)


def open_source(ctx: AppContext, project_id: str, source: Any, checker: RowChecker) -> ItemSource:
    """The rows of a run's ``data_source.source`` (parsed; a ``file_id`` source's File is looked
    up here: call it from a thread)."""
    make = SOURCES.get(source.type)
    if make is None:
        raise DataSourceError(
            "invalid_data_source",
            f"data_source.source.type {source.type!r} is not one hone reads (one of: {', '.join(sorted(SOURCES))}).",
        )
    return ItemSource(make(ctx, project_id, source), checker, ctx.settings.evals.max_items)
