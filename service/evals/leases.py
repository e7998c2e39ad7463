"""What a runner may write to an eval run, and only while it holds the run's lease.

Every write is guarded by a conditional UPDATE (``status = 'in_progress' AND lease_owner =
:owner``) that is also the first statement of its transaction: on PostgreSQL it takes the run's
row lock, on SQLite the database's write lock, so the counters read after it cannot change
under the writer. A cancel, a delete or a takeover by another replica makes the UPDATE match no
row and the writer records nothing: once the cancel has committed, no output item is added."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from service.db.schema import EvalOutputItem, EvalRun
from service.evals.graders.base import Usage
from service.ids import eval_output_item_id
from service.protocol.evals import UNFINISHED_RUN_STATUSES

IN_PROGRESS = "in_progress"


def _rows(result: Any) -> int:
    return int(result.rowcount)


def claimable(session: Session, limit: int, skip: Sequence[str] = ()) -> list[str]:
    """Runs waiting for a runner: queued ones, and in-progress ones whose runner's lease lapsed
    (its process died or stopped)."""
    now = time.time()
    stmt = (
        select(EvalRun.id)
        .where(
            or_(
                EvalRun.status == "queued",
                and_(
                    EvalRun.status == IN_PROGRESS,
                    or_(EvalRun.lease_until.is_(None), EvalRun.lease_until < now),
                ),
            )
        )
        .order_by(EvalRun.seq)
        .limit(limit + len(skip))
    )
    return [run_id for run_id in session.scalars(stmt) if run_id not in skip][:limit]


def claim(session: Session, run_id: str, owner: str, lease_s: float) -> bool:
    """Take the run for ``owner``; only one of any number of replicas racing for it wins."""
    now = time.time()
    res = session.execute(
        update(EvalRun)
        .where(
            EvalRun.id == run_id,
            EvalRun.status.in_(UNFINISHED_RUN_STATUSES),
            or_(EvalRun.lease_until.is_(None), EvalRun.lease_until < now),
        )
        .values(status=IN_PROGRESS, lease_owner=owner, lease_until=now + lease_s)
    )
    return _rows(res) == 1


def renew(session: Session, run_id: str, owner: str, lease_s: float) -> bool:
    """Extend ``owner``'s lease; False when it no longer holds the run (cancelled, deleted,
    finished, or taken over after the lease lapsed)."""
    res = session.execute(
        update(EvalRun)
        .where(EvalRun.id == run_id, EvalRun.status == IN_PROGRESS, EvalRun.lease_owner == owner)
        .values(lease_until=time.time() + lease_s)
    )
    return _rows(res) == 1


def held(session: Session, run_id: str, owner: str, lease_s: float) -> EvalRun | None:
    """The run, locked for the rest of the transaction, if ``owner`` still holds it."""
    if not renew(session, run_id, owner, lease_s):
        return None
    return session.scalar(select(EvalRun).where(EvalRun.id == run_id))


def release(session: Session, run_id: str, owner: str) -> None:
    """Give the run up without finishing it (the process is stopping): the next runner to look
    takes it over at once instead of after the lease."""
    session.execute(
        update(EvalRun)
        .where(EvalRun.id == run_id, EvalRun.status == IN_PROGRESS, EvalRun.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


def recorded_items(session: Session, run_id: str) -> set[int]:
    """The data-source items already graded (by this runner or one before it)."""
    return set(session.scalars(select(EvalOutputItem.datasource_item_id).where(EvalOutputItem.run_id == run_id)))


def set_total(session: Session, run_id: str, owner: str, lease_s: float, total: int) -> bool:
    run = held(session, run_id, owner, lease_s)
    if run is None:
        return False
    run.result_counts = {**_counts(run.result_counts), "total": total}
    return True


def finish(session: Session, run_id: str, owner: str, lease_s: float) -> bool:
    """Every item is recorded: the run is completed."""
    run = held(session, run_id, owner, lease_s)
    if run is None:
        return False
    run.status, run.finished_at = "completed", int(time.time())
    run.lease_owner, run.lease_until = None, None
    return True


def fail(session: Session, run_id: str, owner: str, lease_s: float, code: str, message: str) -> bool:
    run = held(session, run_id, owner, lease_s)
    if run is None:
        return False
    run.status, run.finished_at, run.error = "failed", int(time.time()), {"code": code, "message": message}
    run.lease_owner, run.lease_until = None, None
    return True


@dataclass
class ItemRecord:
    """One graded item as the output item stores it, with what it adds to the run's counters.
    ``criteria``: per testing criterion (in the eval's order) True passed, False failed, None
    not graded (the sample could not be made)."""

    datasource_item_id: int
    status: str  # pass | fail | error
    datasource_item: dict[str, Any]
    sample: dict[str, Any]
    results: list[dict[str, Any]]
    criteria: list[bool | None]
    usage: list[Usage] = field(default_factory=list)


def record_many(
    session: Session,
    run_id: str,
    owner: str,
    lease_s: float,
    items: Sequence[ItemRecord],
    criteria_names: Sequence[str],
) -> bool:
    """Insert the output items and add them to the run's counters in this one transaction (one
    lease check, the inserts, the counters written once): the runner's writer records whatever
    items are waiting in one go, so items do not queue one transaction each for the database's
    write lock. False (and nothing written) when ``owner`` no longer holds the run. Items already
    recorded (by a runner before this one, or twice in ``items``) are left as they are and not
    counted again."""
    run = held(session, run_id, owner, lease_s)
    if run is None:
        return False
    ids = [item.datasource_item_id for item in items]
    seen = set(
        session.scalars(
            select(EvalOutputItem.datasource_item_id).where(
                EvalOutputItem.run_id == run_id, EvalOutputItem.datasource_item_id.in_(ids)
            )
        )
    )
    counts = _counts(run.result_counts)
    usage = list(run.per_model_usage or [])
    criteria = list(run.per_testing_criteria_results or [])
    now = int(time.time())
    for item in items:
        if item.datasource_item_id in seen:
            continue
        seen.add(item.datasource_item_id)
        session.add(
            EvalOutputItem(
                id=eval_output_item_id(),
                run_id=run_id,
                eval_id=run.eval_id,
                project_id=run.project_id,
                datasource_item_id=item.datasource_item_id,
                status=item.status,
                datasource_item=item.datasource_item,
                results=item.results,
                sample=item.sample,
                created_at=now,
            )
        )
        counts[_COUNTER[item.status]] += 1
        usage = add_usage(usage, item.usage)
        criteria = add_criteria(criteria, criteria_names, item.criteria)
    run.result_counts, run.per_model_usage, run.per_testing_criteria_results = counts, usage, criteria
    return True


_COUNTER = {"pass": "passed", "fail": "failed", "error": "errored"}


def _counts(stored: Mapping[str, Any] | None) -> dict[str, int]:
    stored = stored or {}
    return {k: int(stored.get(k) or 0) for k in ("total", "errored", "failed", "passed")}


def add_usage(stored: Sequence[Mapping[str, Any]], usage: Sequence[Usage]) -> list[dict[str, Any]]:
    """``per_model_usage`` with one more call per entry of ``usage`` (a new list: the JSON
    column is written only when it is assigned)."""
    out = [dict(entry) for entry in stored]
    for u in usage:
        entry = next((e for e in out if e.get("model_name") == u.model), None)
        if entry is None:
            entry = {
                "model_name": u.model,
                "invocation_count": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "total_tokens": 0,
                "cached_tokens": 0,
            }
            out.append(entry)
        entry["invocation_count"] += 1
        entry["prompt_tokens"] += u.prompt_tokens
        entry["completion_tokens"] += u.completion_tokens
        entry["total_tokens"] += u.prompt_tokens + u.completion_tokens
        entry["cached_tokens"] += u.cached_tokens
    return out


def add_criteria(
    stored: Sequence[Mapping[str, Any]], names: Sequence[str], outcome: Sequence[bool | None]
) -> list[dict[str, Any]]:
    """``per_testing_criteria_results`` (one entry per criterion, in the eval's order) with one
    more item counted."""
    out = [dict(e) for e in stored]
    if len(out) != len(names):
        out = [{"testing_criteria": name, "passed": 0, "failed": 0} for name in names]
    for entry, passed in zip(out, outcome, strict=False):
        if passed is not None:
            entry["passed" if passed else "failed"] += 1
    return out
