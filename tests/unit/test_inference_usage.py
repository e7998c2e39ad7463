"""Inference usage recording: migration 0007 creates exactly the model's table; the upsert adds
to a minute's row on SQLite and (with HONE_TEST_POSTGRES) PostgreSQL; the recorder batches in
memory and keeps its tally through a failed write; the relay's SSE reading finds usage and drops
only the chunk it was told to."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.auth import get_or_create_project
from service.db.schema import InferenceUsage
from service.db.session import Database
from service.errors import DatabaseUnavailable
from service.gateway.proxy import SeenEvent, SseEvents, _read_event, split_events
from service.gateway.usage import Tokens, UsageRecorder, add_usage, tokens_of
from tests.harness.migrations import database_url, migrate, model_differences

TABLE = InferenceUsage.__tablename__


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(database_url(tmp_path))
    database.migrate()
    yield database
    database.dispose()


def project_id(db: Database, name: str) -> str:
    with db.session() as s:
        return get_or_create_project(s, name).id


def rows(db: Database) -> dict[tuple[str, str, int], tuple[int, int, int, int]]:
    with db.session() as s:
        return {
            (r.project_id, r.model, r.bucket_start): (
                r.input_tokens,
                r.output_tokens,
                r.input_cached_tokens,
                r.num_model_requests,
            )
            for r in s.scalars(select(InferenceUsage))
        }


def test_tokens_of_reads_both_spellings() -> None:
    chat = {"prompt_tokens": 7, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 2}}
    assert tokens_of(chat) == Tokens(7, 3, 2)
    responses = {"input_tokens": 9, "output_tokens": 4, "input_tokens_details": {"cached_tokens": 0}}
    assert tokens_of(responses) == Tokens(9, 4, 0)
    assert tokens_of({"prompt_tokens": -1, "completion_tokens": "x"}) == Tokens(0, 0, 0)
    assert tokens_of(None) is None and tokens_of([1]) is None


def test_upsert_adds_to_the_minute_row(db: Database) -> None:
    p = project_id(db, "acme")
    with db.session() as s:
        add_usage(s, {(p, "hone-tiny", 60): [5, 2, 0, 1], (p, "ft:x", 60): [1, 1, 1, 1]})
    with db.session() as s:
        add_usage(s, {(p, "hone-tiny", 60): [10, 3, 4, 2], (p, "hone-tiny", 120): [1, 0, 0, 1]})
    assert rows(db) == {
        (p, "hone-tiny", 60): (15, 5, 4, 3),
        (p, "ft:x", 60): (1, 1, 1, 1),
        (p, "hone-tiny", 120): (1, 0, 0, 1),
    }


def test_recorder_batches_per_minute_and_writes_on_close(db: Database) -> None:
    p, q = project_id(db, "acme"), project_id(db, "other")
    now = [1_000_000_030.0]
    rec = UsageRecorder(db, interval_s=3600, clock=lambda: now[0])  # the thread never writes by itself here
    rec.add(p, "hone-tiny", Tokens(4, 2, 0))
    rec.add(p, "hone-tiny", None)  # a stream whose usage never came: a request, no tokens
    rec.add(q, "hone-tiny", Tokens(1, 1, 0))
    now[0] += 60
    rec.add(p, "hone-tiny", Tokens(3, 3, 1))
    assert rows(db) == {}  # nothing written on the request path
    assert rec.flush() == 3
    rec.add(p, "hone-tiny", Tokens(1, 1, 0))
    rec.close()
    minute = 1_000_000_020
    assert rows(db) == {
        (p, "hone-tiny", minute): (4, 2, 0, 2),
        (q, "hone-tiny", minute): (1, 1, 0, 1),
        (p, "hone-tiny", minute + 60): (4, 4, 1, 2),
    }


class FlakyDatabase:
    """FAKE: a Database whose first ``failures`` sessions fail as an unreachable database does."""

    def __init__(self, db: Database, failures: int) -> None:
        self.db, self.failures = db, failures

    @contextmanager
    def session(self) -> Iterator[Session]:
        if self.failures:
            self.failures -= 1
            raise DatabaseUnavailable()
        with self.db.session() as s:
            yield s


def test_a_failed_write_keeps_the_tally(db: Database) -> None:
    p = project_id(db, "acme")
    rec = UsageRecorder(FlakyDatabase(db, failures=1), interval_s=3600, clock=lambda: 600.0)  # type: ignore[arg-type]
    rec.add(p, "m", Tokens(2, 1, 0))
    assert rec.flush() == 0  # logged, kept
    rec.add(p, "m", Tokens(2, 1, 0))
    assert rec.flush() == 1
    assert rows(db) == {(p, "m", 600): (4, 2, 0, 2)}


def sse(doc: dict, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(doc, separators=(',', ':'))}\n\n".encode()


def test_sse_events_are_cut_whole_and_usage_is_found() -> None:
    delta = sse({"choices": [{"delta": {"content": 'say "usage":{'}}]})
    usage_chunk = sse({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 4}})
    completed = sse(
        {"type": "response.completed", "response": {"usage": {"input_tokens": 8, "output_tokens": 2}}},
        "response.completed",
    )
    stream = delta + usage_chunk + b"data: [DONE]\n\n" + completed
    events = SseEvents()
    got = b""
    for i in range(0, len(stream), 7):  # arbitrary cuts, mid-line and mid-event
        whole = events.feed(stream[i : i + 7])
        assert whole == b"" or whole.endswith(b"\n\n")
        got += whole
    assert got + events.rest() == stream
    parts = split_events(stream)
    assert parts == [delta, usage_chunk, b"data: [DONE]\n\n", completed]
    assert b'"usage":{' not in delta  # the text's quote is escaped in JSON: no false match
    assert _read_event(usage_chunk) == SeenEvent(usage_chunk, Tokens(5, 4, 0), usage_only=True)
    assert _read_event(completed) == SeenEvent(completed, Tokens(8, 2, 0))
    created = sse({"type": "response.created", "response": {"usage": None}}, "response.created")
    assert _read_event(created) == SeenEvent(created)


def test_0007_creates_the_model_table_and_drops_it(tmp_path: Path) -> None:
    url = database_url(tmp_path)
    db = Database(url)
    db.migrate()
    assert model_differences(db.engine, TABLE) == []  # other tables are other migrations' business
    p = project_id(db, "acme")
    with pytest.raises(IntegrityError), db.session() as s:  # one row per (project, model, minute)
        for _ in range(2):
            s.add(
                InferenceUsage(
                    project_id=p,
                    model="m",
                    bucket_start=60,
                    input_tokens=1,
                    output_tokens=1,
                    input_cached_tokens=0,
                    num_model_requests=1,
                )
            )
            s.flush()
    db.dispose()
    engine = create_engine(url)
    migrate(engine, "0006", down=True)
    assert TABLE not in inspect(engine).get_table_names()
    migrate(engine, "head")
    assert TABLE in inspect(engine).get_table_names()
    engine.dispose()
