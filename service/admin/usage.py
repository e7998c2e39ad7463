"""Usage in the spec's bucket shape (``GET /v1/organization/usage/...``): inference tokens from
the gateway's ``inference_usage`` table (per project, model and minute), and, as a hone
extension, fine-tuning jobs and their trained tokens from the jobs table.

Buckets are aligned to UTC multiples of their width (a day bucket starts at 00:00 UTC); only
usage at or after ``start_time`` and before ``end_time`` is counted. Every bucket in the page is
returned, with empty ``results`` where nothing happened. ``next_page`` is the start of the next
bucket, as an opaque string."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from service.db.schema import InferenceUsage, Job
from service.errors import InvalidRequest, shown
from service.param_errors import invalid_choice, missing, not_an_integer, out_of_range
from service.protocol.admin import UsageCompletionsResult, UsageFineTuningResult, UsageResponse, UsageTimeBucket

# bucket_width -> (seconds, default number of buckets, most buckets a page may hold)
BUCKET_WIDTHS: dict[str, tuple[int, int, int]] = {"1m": (60, 60, 1440), "1h": (3600, 24, 168), "1d": (86400, 7, 31)}
GROUPABLE = ("project_id", "model")  # what hone records; user_id, api_key_id, batch, service_tier it does not
UNRECORDED_FILTERS = ("user_ids", "api_key_ids")


@dataclass(frozen=True)
class UsageQuery:
    start_time: int
    end_time: int
    width: int
    first_bucket: int  # start of this page's first bucket
    buckets: int  # most buckets in this page
    project_ids: tuple[str, ...]
    models: tuple[str, ...]
    group_by: tuple[str, ...]
    batch: bool | None

    @property
    def page_end(self) -> int:
        return min(self.end_time, self.first_bucket + self.buckets * self.width)


def _int(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    digits = value[1:] if value.startswith("-") else value
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 18):
        raise not_an_integer(name, value)
    if value.startswith("-"):
        raise out_of_range(name, int(value), minimum=0)
    return int(value)


def parse(query: Any, now: int | None = None) -> UsageQuery:
    """The query parameters of a usage request (a Starlette ``QueryParams``: arrays arrive as
    ``name[]=a&name[]=b``, as the SDKs send them, or as repeated ``name=a``)."""

    def many(name: str) -> tuple[str, ...]:
        return tuple(query.getlist(name) + query.getlist(f"{name}[]"))

    start = _int("start_time", query.get("start_time"))
    if start is None:
        raise missing("start_time")
    end = _int("end_time", query.get("end_time"))
    end = end if end is not None else (now if now is not None else int(time.time()) + 1)
    if end <= start:
        raise InvalidRequest(f"Invalid 'end_time': must be after start_time ({start}), got {end}.", param="end_time")
    width_name = query.get("bucket_width", "1d")
    if width_name not in BUCKET_WIDTHS:
        raise invalid_choice("bucket_width", width_name, list(BUCKET_WIDTHS))
    width, default_limit, max_limit = BUCKET_WIDTHS[width_name]
    limit = _int("limit", query.get("limit"))
    if limit is not None and not 1 <= limit <= max_limit:
        error = out_of_range("limit", limit, minimum=1, maximum=max_limit)
        hint = f" (the most buckets with bucket_width={width_name})"
        raise InvalidRequest(error.message + hint, param=error.param, code=error.code)
    first = start - start % width
    page = query.get("page")
    if page is not None:
        cursor = _int("page", page)
        if cursor is None or cursor % width or not first <= cursor < end:
            raise InvalidRequest(f"Invalid 'page': {shown(page)!r} is not a next_page of this query.", param="page")
        first = cursor
    group_by = many("group_by")
    for field in group_by:
        if field not in GROUPABLE:
            raise InvalidRequest(
                f"Invalid 'group_by': hone records usage per project and model, so it groups by "
                f"{' and '.join(GROUPABLE)} only, not {shown(field)!r}.",
                param="group_by",
            )
    for name in UNRECORDED_FILTERS:
        if many(name):
            raise InvalidRequest(
                f"Invalid '{name}': hone records usage per project and model, not per {name[:-1]}.", param=name
            )
    batch = query.get("batch")
    if batch not in (None, "true", "false"):
        raise invalid_choice("batch", batch, ["true", "false"])
    return UsageQuery(
        start_time=start,
        end_time=end,
        width=width,
        first_bucket=first,
        buckets=limit or default_limit,
        project_ids=many("project_ids"),
        models=many("models"),
        group_by=group_by,
        batch=None if batch is None else batch == "true",
    )


def _page(q: UsageQuery, results: dict[int, list[Any]]) -> UsageResponse[Any]:
    starts = range(q.first_bucket, q.page_end, q.width)
    data = [
        UsageTimeBucket[Any](start_time=b, end_time=min(b + q.width, q.end_time), results=results.get(b, []))
        for b in starts
    ]
    more = q.page_end < q.end_time
    return UsageResponse[Any](data=data, has_more=more, next_page=str(q.page_end) if more else None)


def _fold(
    rows: Iterable[Any], q: UsageQuery, start_of: Callable[[Any], int], make: Callable[[dict[str, Any], list[Any]], Any]
) -> dict[int, list[Any]]:
    """Rows grouped by bucket and the ``group_by`` fields, each group made into one result."""
    groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for row in rows:
        bucket = start_of(row) - (start_of(row) - q.first_bucket) % q.width
        groups[(bucket, *(getattr(row, f) for f in q.group_by))].append(row)
    out: dict[int, list[Any]] = defaultdict(list)
    for key in sorted(groups, key=lambda k: tuple("" if v is None else str(v) for v in k)):
        out[key[0]].append(make(dict(zip(q.group_by, key[1:], strict=True)), groups[key]))
    return out


def _window(column: Any, q: UsageQuery) -> list[ColumnElement[bool]]:
    return [column >= max(q.start_time, q.first_bucket), column < q.page_end]


def _filters(q: UsageQuery, project: Any, model: Any) -> list[ColumnElement[bool]]:
    where = []
    if q.project_ids:
        where.append(project.in_(q.project_ids))
    if q.models:
        where.append(model.in_(q.models))
    return where


def completions(session: Session, q: UsageQuery) -> UsageResponse[Any]:
    """Inference tokens per bucket. hone runs no batch jobs: ``batch=true`` finds nothing."""
    if q.batch:
        return _page(q, {})
    u = InferenceUsage
    rows = session.execute(
        select(
            u.bucket_start,
            u.project_id,
            u.model,
            func.sum(u.input_tokens).label("input_tokens"),
            func.sum(u.output_tokens).label("output_tokens"),
            func.sum(u.input_cached_tokens).label("input_cached_tokens"),
            func.sum(u.num_model_requests).label("num_model_requests"),
        )
        .where(*_window(u.bucket_start, q), *_filters(q, u.project_id, u.model))
        .group_by(u.bucket_start, u.project_id, u.model)
    ).all()

    def make(keys: dict[str, Any], group: Sequence[Any]) -> UsageCompletionsResult:
        return UsageCompletionsResult(
            input_tokens=sum(int(r.input_tokens) for r in group),
            output_tokens=sum(int(r.output_tokens) for r in group),
            input_cached_tokens=sum(int(r.input_cached_tokens) for r in group),
            num_model_requests=sum(int(r.num_model_requests) for r in group),
            **keys,
        )

    return _page(q, _fold(rows, q, lambda r: int(r.bucket_start), make))


def fine_tuning(session: Session, q: UsageQuery) -> UsageResponse[Any]:
    """hone extension: the fine-tuning jobs created in each bucket, counted by their status now,
    with the tokens they have trained (``trained_tokens`` of the finished ones)."""
    if q.batch:
        return _page(q, {})
    rows = session.execute(
        select(
            Job.created_at,
            Job.project_id,
            Job.model,
            Job.status,
            Job.trained_tokens,
        ).where(*_window(Job.created_at, q), *_filters(q, Job.project_id, Job.model))
    ).all()

    def make(keys: dict[str, Any], group: Sequence[Any]) -> UsageFineTuningResult:
        by_status: dict[str, int] = defaultdict(int)
        for r in group:
            by_status[r.status] += 1
        return UsageFineTuningResult(
            num_jobs=len(group),
            jobs_by_status=dict(sorted(by_status.items())),
            trained_tokens=sum(int(r.trained_tokens or 0) for r in group),
            **keys,
        )

    return _page(q, _fold(rows, q, lambda r: int(r.created_at), make))
