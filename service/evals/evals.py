"""Evals: create (data source config and testing criteria checked once, here), list, retrieve,
update (name, metadata) and delete (with its runs and their output items)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, or_, select
from sqlalchemy.orm import Session

from service.db.schema import Eval, EvalOutputItem, EvalRun, Project
from service.errors import InvalidRequest, NotFound, shown
from service.evals import data_config
from service.evals.config import EvalSettings
from service.evals.graders import registry
from service.evals.graders.base import GraderOptions
from service.pagination import check_limit, paginate
from service.param_errors import invalid_choice
from service.protocol import evals as wire

DEFAULT_LIMIT, MAX_LIMIT = 20, 100


def eval_not_found(eval_id: str) -> NotFound:
    return NotFound(f"No eval found with id '{shown(eval_id)}'.", param="eval_id")


def to_wire(row: Eval) -> wire.Eval:
    return wire.Eval(
        id=row.id,
        name=row.name,
        data_source_config=row.data_source_config,
        testing_criteria=row.testing_criteria,
        created_at=row.created_at,
        metadata=row.metadata_,
    )


def _criteria(params: wire.EvalCreateParams, config: dict[str, Any], settings: EvalSettings) -> list[dict[str, Any]]:
    """Check each grader against the item schema (and whether samples exist) and give it an
    ``id`` as OpenAI does (``{name}-{uuid}``). Names are unique within an eval: a run reports
    its results per criterion."""
    if not params.testing_criteria:
        raise InvalidRequest(
            "Invalid 'testing_criteria': an eval needs at least one grader (a run grades each item with them).",
            param="testing_criteria",
        )
    hints, options = data_config.hints(config), GraderOptions.of(settings)
    seen: dict[str, int] = {}
    stored: list[dict[str, Any]] = []
    for i, spec in enumerate(params.testing_criteria):
        param = f"testing_criteria[{i}]"
        if spec.name in seen:
            raise InvalidRequest(
                f"Invalid '{param}.name': {shown(spec.name)!r} is already the name of "
                f"testing_criteria[{seen[spec.name]}]; "
                "names must be unique within an eval (results are reported per name).",
                param=f"{param}.name",
            )
        seen[spec.name] = i
        registry.check(spec, hints, options, param=param, require_pass_threshold=True)
        stored.append({**spec.model_dump(mode="json", exclude_none=True), "id": f"{spec.name}-{uuid.uuid4()}"})
    return stored


def create(
    session: Session, project: Project, params: wire.EvalCreateParams, settings: EvalSettings, eval_id: str
) -> Eval:
    config = data_config.expand(params.data_source_config)
    criteria = _criteria(params, config, settings)
    now = int(time.time())
    name = params.name if params.name is not None else f"Eval {datetime.fromtimestamp(now, UTC):%Y-%m-%d %H:%M:%S}"
    row = Eval(
        id=eval_id,
        project_id=project.id,
        name=name,
        data_source_config=config,
        testing_criteria=criteria,
        metadata_=dict(params.metadata or {}),
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row


def get(session: Session, project: Project, eval_id: str) -> Eval:
    row = session.scalar(select(Eval).where(Eval.id == eval_id, Eval.project_id == project.id))
    if row is None:
        raise eval_not_found(eval_id)
    return row


def _by_updated_at(
    session: Session, where: list[ColumnElement[bool]], *, after: str | None, limit: int, descending: bool
) -> tuple[list[Eval], bool]:
    """Pages in (updated_at, seq) order: the cursor is the last eval's position in it."""
    conditions = list(where)
    if after:
        anchor = session.execute(select(Eval.updated_at, Eval.seq).where(Eval.id == after, *where)).first()
        if anchor is None:
            raise InvalidRequest(f"Invalid 'after': no eval with id {shown(after)!r} in this list.", param="after")
        at, seq = anchor
        if descending:
            conditions.append(or_(Eval.updated_at < at, and_(Eval.updated_at == at, Eval.seq < seq)))
        else:
            conditions.append(or_(Eval.updated_at > at, and_(Eval.updated_at == at, Eval.seq > seq)))
    order = (Eval.updated_at.desc(), Eval.seq.desc()) if descending else (Eval.updated_at.asc(), Eval.seq.asc())
    rows = list(session.scalars(select(Eval).where(*conditions).order_by(*order).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def list_evals(
    session: Session, project: Project, *, after: str | None, limit: int | None, order: str, order_by: str
) -> tuple[list[Eval], bool]:
    if order not in ("asc", "desc"):
        raise invalid_choice("order", order, ("asc", "desc"))
    if order_by not in ("created_at", "updated_at"):
        raise invalid_choice("order_by", order_by, ("created_at", "updated_at"))
    n = check_limit(limit, DEFAULT_LIMIT, MAX_LIMIT)
    where: list[ColumnElement[bool]] = [Eval.project_id == project.id]
    if order_by == "updated_at":
        return _by_updated_at(session, where, after=after, limit=n, descending=order == "desc")
    return paginate(session, Eval, where, after=after, limit=n, descending=order == "desc")


def update(session: Session, project: Project, eval_id: str, params: wire.EvalUpdateParams) -> Eval:
    row = get(session, project, eval_id)
    given = params.model_fields_set
    if "name" in given:
        if params.name is None:
            raise InvalidRequest("Invalid 'name': expected a string, but got null instead.", param="name")
        row.name = params.name
    if "metadata" in given:
        row.metadata_ = dict(params.metadata or {})  # null clears it, as on OpenAI's other objects
    row.updated_at = max(int(time.time()), row.updated_at)
    session.flush()
    return row


def delete_eval(session: Session, project: Project, eval_id: str) -> None:
    """The eval, its runs and their output items, in one transaction. A run being executed
    stops: its runner's next record finds the run gone."""
    row = get(session, project, eval_id)
    session.execute(delete(EvalOutputItem).where(EvalOutputItem.eval_id == row.id))
    session.execute(delete(EvalRun).where(EvalRun.eval_id == row.id))
    session.delete(row)
    session.flush()
