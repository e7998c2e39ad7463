"""Eval runs: create (queued; service.evals.runner executes it), list, retrieve, cancel and
delete (with its output items). The runner owns a run's counters and its ``in_progress`` /
``completed`` / ``failed`` states; the API only creates, cancels and deletes."""

from __future__ import annotations

import time
from typing import Any, cast

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.orm import Session

from service.catalog.catalog import Catalog
from service.db.schema import EvalOutputItem, EvalRun, Project
from service.errors import InvalidRequest, NotFound, shown
from service.evals import data_sources
from service.evals import evals as evals_service
from service.evals.config import EvalSettings
from service.pagination import check_limit, paginate
from service.param_errors import invalid_choice
from service.protocol import evals as wire
from service.protocol.evals import RUN_STATUSES, UNFINISHED_RUN_STATUSES, RunStatus

DEFAULT_LIMIT, MAX_LIMIT = 20, 100


def report_url(base_url: str, eval_id: str, run_id: str) -> str:
    """Where ``report_url`` points: the dashboard's page for the eval with this run in focus
    (as run B, compared with the eval's newest other run; service/ui/static/js/pages/eval.js)."""
    return f"{base_url.rstrip('/')}/ui/#/evals/{eval_id}?run={run_id}"


def run_not_found(run_id: str) -> NotFound:
    return NotFound(f"No eval run found with id '{shown(run_id)}'.", param="run_id")


def to_wire(row: EvalRun, base_url: str) -> wire.EvalRun:
    return wire.EvalRun(
        id=row.id,
        eval_id=row.eval_id,
        status=cast(RunStatus, row.status),
        # The spec requires a string; a jsonl run evaluates no model of hone's (its samples came
        # with the data), so it is the empty string there.
        model=row.model or "",
        name=row.name,
        created_at=row.created_at,
        report_url=report_url(base_url, row.eval_id, row.id),
        result_counts=wire.ResultCounts.model_validate(row.result_counts),
        per_model_usage=row.per_model_usage,
        per_testing_criteria_results=row.per_testing_criteria_results,
        data_source=row.data_source,
        metadata=row.metadata_,
        error=wire.EvalApiError.model_validate(row.error) if row.error else None,
    )


def _default_name(checked: data_sources.Checked, run_id: str) -> str:
    """As OpenAI names an unnamed run: the model for a completions run, else the type and
    part of the id."""
    return checked.model or f"{checked.data_source['type']}-run-{run_id.rsplit('_', 1)[-1][:8]}"


def create(
    session: Session,
    project: Project,
    eval_id: str,
    params: wire.EvalRunCreateParams,
    *,
    catalog: Catalog,
    settings: EvalSettings,
    run_id: str,
) -> EvalRun:
    eval_row = evals_service.get(session, project, eval_id)
    checked = data_sources.check(params.data_source, data_sources.Checks(session, project, catalog, settings, eval_row))
    row = EvalRun(
        id=run_id,
        eval_id=eval_row.id,
        project_id=project.id,
        name=params.name if params.name is not None else _default_name(checked, run_id),
        model=checked.model,
        status="queued",
        data_source=checked.data_source,
        metadata_=dict(params.metadata or {}),
        error=None,
        result_counts=wire.ResultCounts().model_dump(),
        per_model_usage=[],
        per_testing_criteria_results=[],
        created_at=int(time.time()),
    )
    session.add(row)
    session.flush()
    return row


def get(session: Session, project: Project, eval_id: str, run_id: str) -> EvalRun:
    evals_service.get(session, project, eval_id)
    row = session.scalar(
        select(EvalRun).where(EvalRun.id == run_id, EvalRun.eval_id == eval_id, EvalRun.project_id == project.id)
    )
    if row is None:
        raise run_not_found(run_id)
    return row


def list_runs(
    session: Session,
    project: Project,
    eval_id: str,
    *,
    after: str | None,
    limit: int | None,
    order: str,
    status: str | None,
) -> tuple[list[EvalRun], bool]:
    if order not in ("asc", "desc"):
        raise invalid_choice("order", order, ("asc", "desc"))
    if status is not None and status not in RUN_STATUSES:
        raise invalid_choice("status", status, RUN_STATUSES)
    n = check_limit(limit, DEFAULT_LIMIT, MAX_LIMIT)
    evals_service.get(session, project, eval_id)
    where: list[ColumnElement[bool]] = [EvalRun.eval_id == eval_id, EvalRun.project_id == project.id]
    if status is not None:
        where.append(EvalRun.status == status)
    return paginate(session, EvalRun, where, after=after, limit=n, descending=order == "desc")


def cancel(session: Session, project: Project, eval_id: str, run_id: str) -> EvalRun:
    """Cancel a queued or running run (its runner stops before the next item is recorded).
    Cancelling a cancelled run returns it as it is; a completed or failed one cannot be."""
    row = get(session, project, eval_id, run_id)
    values: dict[str, Any] = {"status": "canceled", "finished_at": int(time.time())}
    result = session.execute(
        update(EvalRun)
        .where(EvalRun.id == row.id, EvalRun.status.in_(UNFINISHED_RUN_STATUSES))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.refresh(row)
    if result.rowcount != 1 and row.status != "canceled":  # type: ignore[attr-defined]
        raise InvalidRequest(f"Cannot cancel eval run {row.id}: it is {row.status}.", param="run_id")
    return row


def delete_run(session: Session, project: Project, eval_id: str, run_id: str) -> None:
    """The run and its output items. A run being executed stops: its runner's next record
    finds the run gone."""
    row = get(session, project, eval_id, run_id)
    session.execute(delete(EvalOutputItem).where(EvalOutputItem.run_id == row.id))
    session.execute(delete(EvalRun).where(EvalRun.id == row.id))
    session.flush()
