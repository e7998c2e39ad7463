"""Job events: OpenAI's messages, newest first on the wire; trainer reports deduplicated by
their client-generated id."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service import ids
from service.db.schema import JobEvent
from service.protocol.fine_tuning import FineTuningJobEvent


def add(
    session: Session,
    job_id: str,
    message: str,
    *,
    level: str = "info",
    type: str = "message",
    data: dict[str, Any] | None = None,
    client_id: str | None = None,
    created_at: int | None = None,
) -> JobEvent | None:
    """Record an event; a repeated ``client_id`` is a retried report and is ignored."""
    if client_id is not None and session.scalar(
        select(JobEvent.seq).where(JobEvent.job_id == job_id, JobEvent.client_id == client_id)
    ):
        return None
    row = JobEvent(
        id=ids.event_id(),
        job_id=job_id,
        client_id=client_id,
        created_at=created_at or int(time.time()),
        level=level,
        message=message,
        type=type,
        data=data,
    )
    session.add(row)
    return row


def to_wire(row: JobEvent) -> FineTuningJobEvent:
    return FineTuningJobEvent(
        id=row.id, created_at=row.created_at, level=row.level, message=row.message, type=row.type, data=row.data or {}
    )
