"""Inference usage: the tokens each relayed request used, summed per project, model and UTC
minute into the ``inference_usage`` table (read by the Admin API's usage endpoints).

The request path only adds to an in-memory tally (a dict under a lock, no I/O); a daemon
thread writes the tally every ``interval_s`` as one upsert per batch, so recording never slows
or fails a request. Several replicas add to the same rows: every write is an increment. A
failed write is logged and its tally kept for the next try (bounded: past ``MAX_PENDING``
rows the oldest are dropped with an error in the log)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db.schema import InferenceUsage
from service.db.session import Database
from service.errors import InvalidRequest

log = logging.getLogger(__name__)
BUCKET_S = 60
MAX_PENDING = 100_000  # distinct (project, model, minute) rows held while the database is unreachable
COUNTERS = ("input_tokens", "output_tokens", "input_cached_tokens", "num_model_requests")
Key = tuple[str, str, int]  # project id, model, bucket start


@dataclass(frozen=True)
class Tokens:
    input: int = 0
    output: int = 0
    cached: int = 0

    def as_chat_usage(self) -> dict[str, int]:
        """The chat completions spelling (what the gateway's metrics read)."""
        return {"prompt_tokens": self.input, "completion_tokens": self.output}


def tokens_of(usage: Any) -> Tokens | None:
    """A usage object from chat/completions (``prompt_tokens``/``completion_tokens``) or from
    responses (``input_tokens``/``output_tokens``); None when it is neither."""
    if not isinstance(usage, dict):
        return None

    def count(*names: str) -> int:
        for name in names:
            value = usage.get(name)
            if isinstance(value, int) and value >= 0:
                return value
        return 0

    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Tokens(
        input=count("prompt_tokens", "input_tokens"),
        output=count("completion_tokens", "output_tokens"),
        cached=cached if isinstance(cached, int) and cached >= 0 else 0,
    )


def add_usage(session: Session, rows: dict[Key, list[int]]) -> None:
    """Add ``rows`` (key -> increments in ``COUNTERS`` order) to the table: one
    INSERT ... ON CONFLICT DO UPDATE, which SQLite and PostgreSQL both speak. Keys are sorted so
    concurrent writers lock rows in the same order."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect]
    values = [
        {"project_id": p, "model": m, "bucket_start": b, **dict(zip(COUNTERS, counts, strict=True))}
        for (p, m, b), counts in sorted(rows.items())
    ]
    stmt: Any = insert(InferenceUsage).values(values)  # either dialect's Insert: both have on_conflict_do_update
    stmt = stmt.on_conflict_do_update(
        index_elements=["project_id", "model", "bucket_start"],
        set_={c: getattr(InferenceUsage, c) + getattr(stmt.excluded, c) for c in COUNTERS},
    )
    session.execute(stmt)


class UsageRecorder:
    def __init__(self, db: Database, interval_s: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self.db, self.interval_s, self.clock = db, interval_s, clock
        self._pending: dict[Key, list[int]] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one writer at a time (the thread, or a caller of flush)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, project_id: str, model: str, tokens: Tokens | None) -> None:
        """Count one model request (and its tokens, when the upstream reported them). Cheap: no I/O."""
        t = tokens or Tokens()
        key = (project_id, model, int(self.clock()) // BUCKET_S * BUCKET_S)
        with self._lock:
            self._merge(key, [t.input, t.output, t.cached, 1])
        if self._thread is None:
            self._start()

    def _merge(self, key: Key, counts: list[int]) -> None:
        row = self._pending.get(key)
        if row is None:
            if len(self._pending) >= MAX_PENDING:
                dropped = next(iter(self._pending))
                del self._pending[dropped]
                log.error("inference usage: %d rows unwritten; dropped the oldest %s", MAX_PENDING, dropped)
            self._pending[key] = list(counts)
        else:
            for i, n in enumerate(counts):
                row[i] += n

    def flush(self) -> int:
        """Write what is pending; returns the number of rows written (0 on failure, logged)."""
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return 0
            try:
                with self.db.session() as s:
                    add_usage(s, batch)
            except (InvalidRequest, IntegrityError):  # a row the database refuses: retrying cannot help
                log.exception("inference usage: dropped %d rows the database refused", len(batch))
                return 0
            except Exception:  # the database is down or busy: keep the tally for the next try
                log.exception("inference usage: could not write %d rows; retrying", len(batch))
                with self._lock:
                    for key, counts in batch.items():
                        self._merge(key, counts)
                return 0
            return len(batch)

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="hone-usage-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def close(self) -> None:
        """Stop the writer thread and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()
