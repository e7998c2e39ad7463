"""The structural check a ``fine-tune`` upload must pass: UTF-8 JSONL, one object per line.

Fed incrementally while the upload streams; remembers only the first problem."""

from __future__ import annotations

import orjson

from service.validation.lines import LineSplitter, LineTooLong


class JsonlChecker:
    def __init__(self, max_line_bytes: int) -> None:
        self._lines = LineSplitter(max_line_bytes)
        self.error: str | None = None
        self.n_lines = 0

    def feed(self, chunk: bytes) -> None:
        if self.error is None:
            try:
                self._check(self._lines.feed(chunk))
            except LineTooLong as e:
                self.error = f"Line {e.lineno} is longer than the limit of {e.limit} bytes."

    def close(self) -> None:
        if self.error is None:
            self._check(self._lines.close())
        if self.error is None and self.n_lines == 0:
            self.error = "The file is empty: it has no JSON lines."

    def _check(self, lines: list[tuple[int, bytes]]) -> None:
        for lineno, raw in lines:
            self.n_lines += 1
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as e:
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as ue:
                    self.error = f"Line {lineno} is not valid UTF-8 (byte offset {ue.start})."
                else:
                    self.error = f"Line {lineno} is not valid JSON: {e}."
                return
            if not isinstance(value, dict):
                self.error = f"Line {lineno} is a JSON {type(value).__name__}, expected an object."
                return
