from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler
from pydantic_core import CoreSchema

T = TypeVar("T")

_SCALARS = frozenset({"int", "float", "bool", "str"})


def _no_coercion(node: Any) -> None:
    """Mark every scalar in a core schema strict: JSON's ``true`` is not the integer 1, ``"5"``
    is not 5 and 1.5 is not an integer (enums and literals keep matching their values)."""
    if isinstance(node, dict):
        if isinstance(node.get("type"), str) and node["type"] in _SCALARS:
            node["strict"] = True
        for key, value in node.items():
            if key not in ("metadata", "serialization"):
                _no_coercion(value)
    elif isinstance(node, list):
        for value in node:
            _no_coercion(value)


class RequestModel(BaseModel):
    """The base of every request body: unknown fields are refused ("Unrecognized request
    argument supplied") and values are taken as the JSON types they are, never coerced, as
    OpenAI refuses them (``"n": true`` is an invalid type, not 1). service.param_errors
    words the errors."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        schema = handler(source)
        _no_coercion(schema)
        return schema


# OpenAI's metadata map: at most 16 pairs, keys up to 64 characters, values up to 512.
MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512
Metadata = Annotated[
    dict[Annotated[str, Field(max_length=MAX_METADATA_KEY)], Annotated[str, Field(max_length=MAX_METADATA_VALUE)]],
    Field(max_length=MAX_METADATA_PAIRS),
]


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
