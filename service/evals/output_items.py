"""A run's output items: list (``pass`` / ``fail`` filter) and retrieve. The runner writes
them (service.evals.runner); ``sample`` is stored in the wire shape (see ``sample_wire``).

``EvalRunOutputItem.sample`` is required, with every sampling field a number. A jsonl row's
sample was not sampled by hone, and a completions run need not set ``max_completion_tokens``:
where a field is unset the wire carries the spec's defaults (temperature 1, top_p 1, seed 42)
and ``max_completion_tokens`` 0 ("no limit was set"); ``model`` and ``finish_reason`` are the
empty string when the row did not say."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from service.db.schema import EvalOutputItem, Project
from service.errors import NotFound, shown
from service.evals import runs
from service.pagination import check_limit, paginate
from service.param_errors import invalid_choice
from service.protocol import evals as wire

DEFAULT_LIMIT, MAX_LIMIT = 20, 100
STATUSES = ("fail", "pass")
_DEFAULTS: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0, "seed": 42, "max_completion_tokens": 0}
_USAGE = ("total_tokens", "completion_tokens", "prompt_tokens", "cached_tokens")


def output_item_not_found(item_id: str) -> NotFound:
    return NotFound(f"No eval run output item found with id '{shown(item_id)}'.", param="output_item_id")


def _messages(value: Any) -> list[dict[str, str]]:
    """Messages as the spec types them: a role and a string content (other content as JSON)."""
    if not isinstance(value, list):
        return []
    out = []
    for m in value:
        if isinstance(m, Mapping):
            content = m.get("content")
            text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
            out.append({"role": str(m.get("role") or ""), "content": text})
    return out


def sample_wire(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """The wire ``sample`` of a stored one: every required field present and of its type."""
    s = dict(stored or {})
    usage = s.get("usage") or {}
    out: dict[str, Any] = {
        "input": _messages(s.get("input")),
        "output": _messages(s.get("output")),
        "finish_reason": s.get("finish_reason") or "",
        "model": s.get("model") or "",
        "usage": {k: int(usage.get(k) or 0) for k in _USAGE},
        "error": s.get("error") or None,
    }
    for key, default in _DEFAULTS.items():
        out[key] = s[key] if s.get(key) is not None else default
    return out


def to_wire(row: EvalOutputItem) -> wire.EvalRunOutputItem:
    return wire.EvalRunOutputItem(
        id=row.id,
        run_id=row.run_id,
        eval_id=row.eval_id,
        created_at=row.created_at,
        status=row.status,
        datasource_item_id=row.datasource_item_id,
        datasource_item=row.datasource_item,
        results=row.results,
        sample=sample_wire(row.sample),
    )


def list_items(
    session: Session,
    project: Project,
    eval_id: str,
    run_id: str,
    *,
    after: str | None,
    limit: int | None,
    order: str,
    status: str | None,
) -> tuple[list[EvalOutputItem], bool]:
    """``status`` ``pass`` or ``fail``: errored items are in neither (the run counts them apart)."""
    if order not in ("asc", "desc"):
        raise invalid_choice("order", order, ("asc", "desc"))
    if status is not None and status not in STATUSES:
        raise invalid_choice("status", status, STATUSES)
    n = check_limit(limit, DEFAULT_LIMIT, MAX_LIMIT)
    run = runs.get(session, project, eval_id, run_id)
    where: list[ColumnElement[bool]] = [EvalOutputItem.run_id == run.id, EvalOutputItem.project_id == project.id]
    if status is not None:
        where.append(EvalOutputItem.status == status)
    return paginate(session, EvalOutputItem, where, after=after, limit=n, descending=order == "desc")


def get(session: Session, project: Project, eval_id: str, run_id: str, item_id: str) -> EvalOutputItem:
    run = runs.get(session, project, eval_id, run_id)
    row = session.scalar(
        select(EvalOutputItem).where(
            EvalOutputItem.id == item_id, EvalOutputItem.run_id == run.id, EvalOutputItem.project_id == project.id
        )
    )
    if row is None:
        raise output_item_not_found(item_id)
    return row
