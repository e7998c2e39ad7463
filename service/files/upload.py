"""Streaming ``multipart/form-data`` receiver for ``POST /v1/files`` (and, with its field
named ``data``, for the parts of ``POST /v1/uploads/{id}/parts``).

The body is parsed as it arrives (python-multipart's push parser) and the ``file`` part goes
straight into a blob-store writer, hashed and size-checked on the way; nothing holds the whole
body. Parsing and disk writes run in a worker thread, one ~1 MiB batch at a time, so the event
loop stays free.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from contract.blobstore import BlobStore, BlobWriter
from service.errors import InvalidRequest, PayloadTooLarge
from service.files.jsonl_check import JsonlChecker

_BATCH = 1024 * 1024
_MAX_FIELD = 64 * 1024
# The form fields POST /v1/files takes besides ``file``; any other is refused when it starts.
FORM_FIELDS = ("purpose", "expires_after[anchor]", "expires_after[seconds]")
MAX_FILENAME_CHARS = 255
_MULTIPART_SLACK = 64 * 1024  # headers and boundaries around the file part


@dataclass
class ReceivedUpload:
    key: str
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    bytes: int = 0
    sha256: str = ""
    jsonl_error: str | None = None
    got_file: bool = False


def _filename(raw: bytes) -> str:
    """The upload's file name without directories; control characters and overlong names are
    refused (they could not be sent back in a Content-Disposition header, nor stored everywhere)."""
    name = raw.decode("utf-8", "replace").replace("\\", "/").split("/")[-1] or "upload"
    bad = sorted({c for c in name if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0})
    if bad:
        codes = ", ".join(f"\\x{ord(c):02x}" for c in bad)
        raise InvalidRequest(f"The filename contains control characters ({codes}).", param="file")
    if len(name) > MAX_FILENAME_CHARS:
        raise InvalidRequest(f"The filename is longer than {MAX_FILENAME_CHARS} characters.", param="file")
    return name


def _too_large(limit: int, field: str = "file") -> PayloadTooLarge:
    what = "File" if field == "file" else f"The '{field}' part"
    return PayloadTooLarge(
        f"{what} is too large: the maximum size is {limit} bytes.", param=field, code="file_too_large"
    )


class _Receiver:
    def __init__(
        self,
        store: BlobStore,
        key: str,
        max_bytes: int,
        max_line_bytes: int,
        file_field: str = "file",
        form_fields: tuple[str, ...] = FORM_FIELDS,
        check_jsonl: bool = True,
    ) -> None:
        self.result = ReceivedUpload(key=key)
        self._file_field, self._form_fields, self._check_jsonl = file_field, form_fields, check_jsonl
        self._store = store
        self._max = max_bytes
        self._max_line_bytes = max_line_bytes
        self._hash = hashlib.sha256()
        self._writer: BlobWriter | None = None
        self._checker: JsonlChecker | None = None
        self._header_field = b""
        self._header_value = b""
        self._disposition = b""
        self._name: str | None = None
        self._value = bytearray()
        self._in_file = False

    # python-multipart callbacks
    def on_part_begin(self) -> None:
        self._disposition, self._name, self._in_file = b"", None, False
        self._value.clear()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_field.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_field, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._name == self._file_field:
            if self.result.got_file:
                raise InvalidRequest(f"Only one '{self._file_field}' part is allowed.", param=self._file_field)
            self.result.got_file = True
            self._in_file = True
            self.result.filename = _filename(options.get(b"filename", b"upload"))
            self._writer = self._store.writer(self.result.key)
            self._checker = JsonlChecker(self._max_line_bytes)
        elif self._name not in self._form_fields:  # refused before its value is read: nothing unbounded is kept
            shown = self._name[:64]
            raise InvalidRequest(f"Unrecognized request argument supplied: {shown}", param=shown)
        elif self._name in self.result.fields:  # a repeated field could change the purpose after the file's check
            raise InvalidRequest(f"The form field '{self._name}' is given more than once.", param=self._name)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._in_file:
            assert self._writer is not None and self._checker is not None
            self.result.bytes += len(chunk)
            if self.result.bytes > self._max:
                raise _too_large(self._max, self._file_field)
            self._hash.update(chunk)
            self._writer.write(chunk)
            if self._check_jsonl and self.result.fields.get("purpose") in (None, "fine-tune"):
                self._checker.feed(chunk)
        else:
            if len(self._value) + len(chunk) > _MAX_FIELD:
                raise InvalidRequest(f"Form field {self._name!r} is too long.", param=self._name)
            self._value += chunk

    def on_part_end(self) -> None:
        if self._in_file:
            self._in_file = False
        elif self._name:
            self.result.fields[self._name] = self._value.decode("utf-8", "replace")

    def on_end(self) -> None:
        pass

    def finish(self) -> ReceivedUpload:
        if self._writer is None:
            raise InvalidRequest(
                f"Missing the '{self._file_field}' part in the multipart body.", param=self._file_field
            )
        assert self._checker is not None
        if self.result.fields.get("purpose") == "fine-tune":
            self._checker.close()
            self.result.jsonl_error = self._checker.error
        self.result.sha256 = self._hash.hexdigest()
        self._writer.commit()
        return self.result

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


async def receive_upload(
    request: Request,
    store: BlobStore,
    key: str,
    *,
    max_bytes: int,
    max_line_bytes: int,
    file_field: str = "file",
    form_fields: tuple[str, ...] = FORM_FIELDS,
    check_jsonl: bool = True,
) -> ReceivedUpload:
    """Receive the multipart body into ``key``: the ``file_field`` part is streamed to the store,
    the ``form_fields`` are kept (any other field is refused), the JSONL check runs when
    ``check_jsonl`` (for purpose ``fine-tune``)."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidRequest("Content-Type must be multipart/form-data with a boundary.")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + _MULTIPART_SLACK:
        raise _too_large(max_bytes, file_field)

    receiver = _Receiver(store, key, max_bytes, max_line_bytes, file_field, form_fields, check_jsonl)
    callbacks = {
        name: getattr(receiver, name)
        for name in (
            "on_part_begin",
            "on_part_data",
            "on_part_end",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_end",
        )
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    pending = bytearray()
    try:
        async for chunk in request.stream():
            pending += chunk
            if len(pending) >= _BATCH:
                batch, pending = bytes(pending), bytearray()
                await run_in_threadpool(parser.write, batch)
        if pending:
            await run_in_threadpool(parser.write, bytes(pending))
        parser.finalize()
        return await run_in_threadpool(receiver.finish)
    except FormParserError as e:
        await run_in_threadpool(receiver.abort)
        raise InvalidRequest(f"Malformed multipart body: {e}") from e
    except BaseException:
        await run_in_threadpool(receiver.abort)
        raise
