"""Errors of the job-data validator.

``Problem`` is raised by the small rule functions in ``chat`` and ``preference``: it carries
only what is wrong (``detail``) and where inside the line (``where``, e.g. ``"message 2"``).
The driver adds the line number and the job's ``param`` and raises ``DataValidationError``,
whose ``code``/``message``/``param`` go on the failed job as its OpenAI-style ``error``.
"""

from __future__ import annotations


class DataValidationError(Exception):
    """A training or validation file is unusable for the job; fields as the job's ``error``."""

    def __init__(
        self, code: str, message: str, param: str, *, line: int | None = None, where: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.line = line  # 1-based physical line, None for file-level problems
        self.where = where  # inside the line (e.g. "message 2"), None when about the whole line


class Problem(Exception):
    """One rule broken inside a line; ``where`` is None when not about a single message."""

    def __init__(self, detail: str, where: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.where = where
