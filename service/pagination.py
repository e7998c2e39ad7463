"""Cursor pagination as the SDK drives it: ``after`` is the id of the last item of the previous
page (exclusive), ordered by insertion sequence; ``has_more`` says whether a next page exists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from service.errors import InvalidRequest
from service.param_errors import out_of_range

T = TypeVar("T")


def check_limit(limit: int | None, default: int, maximum: int) -> int:
    if limit is None:
        return default
    if not 1 <= limit <= maximum:
        raise out_of_range("limit", limit, minimum=1, maximum=maximum)
    return limit


def paginate(
    session: Session,
    model: type[T],
    where: Sequence[ColumnElement[bool]],
    *,
    after: str | None,
    limit: int,
    descending: bool = True,
) -> tuple[list[T], bool]:
    m: Any = model
    conditions = list(where)
    if after:
        after_seq = session.scalar(select(m.seq).where(m.id == after, *where))
        if after_seq is None:
            raise InvalidRequest(f"Invalid 'after': no object with id {after!r} in this list.", param="after")
        conditions.append(m.seq < after_seq if descending else m.seq > after_seq)
    order = m.seq.desc() if descending else m.seq.asc()
    rows = list(session.scalars(select(m).where(*conditions).order_by(order).limit(limit + 1)))
    return rows[:limit], len(rows) > limit
