from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class CursorPage(BaseModel, Generic[T]):
    """The list envelope. ``first_id``/``last_id`` are sent on every list: the spec requires
    them for files and checkpoints, and they are harmless extra fields elsewhere."""

    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False

    @classmethod
    def of(cls, data: list[T], has_more: bool) -> CursorPage[T]:
        """A page of objects with ``id``s, its cursors taken from the first and last."""
        first, last = (getattr(data[0], "id", None), getattr(data[-1], "id", None)) if data else (None, None)
        return cls(data=data, has_more=has_more, first_id=first, last_id=last)


class ErrorObject(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorObject
