"""``Idempotency-Key`` for POST creates.

The record of a keyed request is written in the same transaction as the object it creates,
so either both exist or neither does. A retry with the same key and the same request gets the
first response back; the same key with a different request is 409. Two concurrent requests
with one key race on the record's primary key: the loser rolls back and replays the winner.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db.schema import IdempotencyRecord
from service.db.session import Database
from service.errors import Conflict, InvalidRequest

HEADER = "Idempotency-Key"
Action = Callable[[Session], tuple[int, dict[str, Any]]]


def fingerprint(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def _replay(session: Session, project_id: str, key: str, fp: str) -> tuple[int, dict[str, Any]] | None:
    rec = session.get(IdempotencyRecord, (project_id, key))
    if rec is None:
        return None
    if rec.fingerprint != fp:
        raise Conflict(
            f"Idempotency-Key {key!r} was already used with a different request.",
            param="Idempotency-Key",
            code="idempotency_key_reused",
            headers={"x-should-retry": "false"},
        )
    return rec.status_code, rec.body


def run(
    db: Database, project_id: str, key: str | None, fp: str, action: Action, on_replay: Callable[[], None] | None = None
) -> tuple[int, dict[str, Any]]:
    """Run ``action`` once per (project, key); ``on_replay`` cleans up work a replay discards."""
    if key is None:
        with db.session() as s:
            return action(s)
    if not 1 <= len(key) <= 255:
        raise InvalidRequest("Idempotency-Key must be 1 to 255 characters.", param="Idempotency-Key")
    try:
        with db.session() as s:
            replay = _replay(s, project_id, key, fp)
            if replay is None:
                status, body = action(s)
                s.add(
                    IdempotencyRecord(
                        project_id=project_id,
                        key=key,
                        fingerprint=fp,
                        status_code=status,
                        body=body,
                        created_at=int(time.time()),
                    )
                )
                s.flush()
                return status, body
    except IntegrityError:
        pass  # a concurrent request with the same key committed first
    except Conflict:
        if on_replay:
            on_replay()
        raise
    if on_replay:
        on_replay()
    with db.session() as s:
        replay = _replay(s, project_id, key, fp)
    if replay is None:  # the winner rolled back: nothing was created, so a retry may proceed
        raise Conflict(
            f"A request with Idempotency-Key {key!r} is in progress; retry.",
            param="Idempotency-Key",
            code="idempotency_key_in_progress",
        )
    return replay
