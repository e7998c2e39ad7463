"""Push-based JSONL line splitting shared by the upload check and the job validator.

Bytes arrive in arbitrary chunks (multipart parts, blob-store reads). The splitter keeps at
most one partial line in memory, bounded by ``max_line_bytes``, so a 512 MB file never sits
whole in memory. Line numbers are 1-based physical lines; whitespace-only lines are skipped
(a trailing newline is normal), and a UTF-8 byte order mark on line 1 is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

UTF8_BOM = b"\xef\xbb\xbf"


class LineTooLong(ValueError):
    def __init__(self, lineno: int, limit: int) -> None:
        super().__init__(f"line {lineno} is longer than {limit} bytes")
        self.lineno = lineno
        self.limit = limit


class LineSplitter:
    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self._pending = bytearray()
        self._lineno = 0  # number of the last line handed out (or skipped)
        self._first = True

    def feed(self, chunk: bytes) -> list[tuple[int, bytes]]:
        """Return the complete, non-blank lines that ``chunk`` finishes."""
        out: list[tuple[int, bytes]] = []
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                break
            piece = chunk[start:nl]
            if self._pending:
                self._pending += piece
                piece = bytes(self._pending)
                self._pending.clear()
            self._emit(piece, out)
            start = nl + 1
        rest = chunk[start:]
        if rest:
            if len(self._pending) + len(rest) > self.max_line_bytes:
                raise LineTooLong(self._lineno + 1, self.max_line_bytes)
            self._pending += rest
        return out

    def close(self) -> list[tuple[int, bytes]]:
        """Flush the last line when the input does not end with a newline."""
        out: list[tuple[int, bytes]] = []
        if self._pending:
            piece = bytes(self._pending)
            self._pending.clear()
            self._emit(piece, out)
        return out

    @property
    def lines_seen(self) -> int:
        return self._lineno

    def _emit(self, piece: bytes, out: list[tuple[int, bytes]]) -> None:
        self._lineno += 1
        if len(piece) > self.max_line_bytes:
            raise LineTooLong(self._lineno, self.max_line_bytes)
        if self._first:
            self._first = False
            if piece.startswith(UTF8_BOM):
                piece = piece[len(UTF8_BOM) :]
        if piece.endswith(b"\r"):
            piece = piece[:-1]
        if piece.strip():
            out.append((self._lineno, piece))


def iter_lines(chunks: Iterable[bytes], max_line_bytes: int) -> Iterator[tuple[int, bytes]]:
    splitter = LineSplitter(max_line_bytes)
    for chunk in chunks:
        yield from splitter.feed(chunk)
    yield from splitter.close()
