"""What a runner may write to an eval run (service.evals.leases), on SQLite and (with
HONE_TEST_POSTGRES) PostgreSQL: one claimant of many wins, a lapsed lease is taken over, an item
is recorded with its counters only while its runner holds the run, never twice, a batch of items
in one transaction (all or nothing); and the line
splitting of a file_id source across chunk boundaries (service.evals.item_source)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select, update

from service.auth import get_or_create_project
from service.db.schema import Eval, EvalOutputItem, EvalRun
from service.db.session import Database
from service.evals import leases
from service.evals.graders.base import Usage
from service.evals.item_source import DataSourceError, _lines
from service.evals.leases import ItemRecord
from tests.harness.migrations import database_url

CRITERIA = ["echo-1", "length-2"]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(database_url(tmp_path))
    database.migrate()
    yield database
    database.dispose()


def _run(db: Database, status: str = "queued") -> str:
    with db.session() as s:
        project = get_or_create_project(s, "acme")
        s.add(
            Eval(
                id="eval_1",
                project_id=project.id,
                name="e",
                data_source_config={},
                testing_criteria=[],
                metadata_={},
                created_at=0,
                updated_at=0,
            )
        )
        s.flush()
        s.add(
            EvalRun(
                id="evalrun_1",
                eval_id="eval_1",
                project_id=project.id,
                name="r",
                status=status,
                data_source={},
                metadata_={},
                result_counts={"total": 0, "errored": 0, "failed": 0, "passed": 0},
                per_model_usage=[],
                per_testing_criteria_results=[],
                created_at=0,
            )
        )
    return "evalrun_1"


def _item(n: int, status: str = "pass", criteria: list[bool | None] | None = None) -> ItemRecord:
    return ItemRecord(
        datasource_item_id=n,
        status=status,
        datasource_item={"n": n},
        sample={},
        results=[],
        criteria=criteria if criteria is not None else [True, True],
        usage=[Usage("m", prompt_tokens=3, completion_tokens=2, cached_tokens=1)],
    )


def _claim(db: Database, run_id: str, owner: str) -> bool:
    with db.session() as s:
        return leases.claim(s, run_id, owner, 30.0)


def _record(db: Database, run_id: str, owner: str, *items: ItemRecord) -> bool:
    with db.session() as s:
        return leases.record_many(s, run_id, owner, 30.0, items, CRITERIA)


def _read(db: Database, run_id: str) -> tuple[EvalRun, list[int]]:
    with db.session() as s:
        run = s.scalar(select(EvalRun).where(EvalRun.id == run_id))
        assert run is not None
        items = list(s.scalars(select(EvalOutputItem.datasource_item_id).where(EvalOutputItem.run_id == run_id)))
        return run, sorted(items)


def test_of_many_runners_claiming_a_run_one_wins(db: Database) -> None:
    run_id = _run(db)
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda n: _claim(db, run_id, f"runner-{n}"), range(8)))
    assert won.count(True) == 1
    run, _ = _read(db, run_id)
    assert run.status == "in_progress" and run.lease_owner == f"runner-{won.index(True)}"
    with db.session() as s:
        assert leases.claimable(s, 10) == []


def test_a_lapsed_lease_is_taken_over_and_the_old_holder_records_nothing(db: Database) -> None:
    run_id = _run(db)
    assert _claim(db, run_id, "old")
    assert _record(db, run_id, "old", _item(0))
    with db.session() as s:  # the old runner stalls past its lease
        s.execute(update(EvalRun).where(EvalRun.id == run_id).values(lease_until=time.time() - 1))
    with db.session() as s:
        assert leases.claimable(s, 10) == [run_id]
    assert _claim(db, run_id, "new")
    assert not _record(db, run_id, "old", _item(1))
    with db.session() as s:
        assert not leases.renew(s, run_id, "old", 30.0)
        assert leases.recorded_items(s, run_id) == {0}
    assert _record(db, run_id, "new", _item(1, "fail", [True, False]))
    run, items = _read(db, run_id)
    assert items == [0, 1]
    assert run.result_counts == {"total": 0, "errored": 0, "failed": 1, "passed": 1}
    assert run.per_testing_criteria_results == [
        {"testing_criteria": "echo-1", "passed": 2, "failed": 0},
        {"testing_criteria": "length-2", "passed": 1, "failed": 1},
    ]
    assert run.per_model_usage == [
        {
            "model_name": "m",
            "invocation_count": 2,
            "prompt_tokens": 6,
            "completion_tokens": 4,
            "total_tokens": 10,
            "cached_tokens": 2,
        }
    ]


def test_nothing_is_recorded_once_the_run_is_cancelled(db: Database) -> None:
    run_id = _run(db)
    assert _claim(db, run_id, "me")
    assert _record(db, run_id, "me", _item(0))
    with db.session() as s:
        s.execute(update(EvalRun).where(EvalRun.id == run_id).values(status="canceled"))
    assert not _record(db, run_id, "me", _item(1))
    with db.session() as s:
        assert not leases.finish(s, run_id, "me", 30.0)
    run, items = _read(db, run_id)
    assert (run.status, items, run.result_counts["passed"]) == ("canceled", [0], 1)


def test_an_item_recorded_twice_is_kept_once_and_counted_once(db: Database) -> None:
    run_id = _run(db)
    assert _claim(db, run_id, "me")
    assert _record(db, run_id, "me", _item(4, "error", [None, None]))
    assert _record(db, run_id, "me", _item(4, "error", [None, None]))
    run, items = _read(db, run_id)
    assert items == [4]
    assert run.result_counts == {"total": 0, "errored": 1, "failed": 0, "passed": 0}
    assert [(c["passed"], c["failed"]) for c in run.per_testing_criteria_results] == [(0, 0), (0, 0)]


def test_a_batch_is_recorded_in_one_transaction_counted_once_each_skipping_recorded_items(db: Database) -> None:
    run_id = _run(db)
    assert _claim(db, run_id, "me")
    assert _record(db, run_id, "me", _item(2))
    errored: list[bool | None] = [None, None]
    batch = [_item(0), _item(1, "fail", [True, False]), _item(2, "error", errored), _item(3, "error", errored)]
    assert _record(db, run_id, "me", *batch, _item(3, "error", errored))  # 2 recorded before, 3 twice here
    run, items = _read(db, run_id)
    assert items == [0, 1, 2, 3]
    assert run.result_counts == {"total": 0, "errored": 1, "failed": 1, "passed": 2}
    assert run.per_testing_criteria_results == [
        {"testing_criteria": "echo-1", "passed": 3, "failed": 0},
        {"testing_criteria": "length-2", "passed": 2, "failed": 1},
    ]
    [usage] = run.per_model_usage
    assert (usage["invocation_count"], usage["prompt_tokens"], usage["total_tokens"]) == (4, 12, 20)
    with db.session() as s:  # the item recorded before the batch kept its own row
        assert s.scalar(select(EvalOutputItem.status).where(EvalOutputItem.datasource_item_id == 2)) == "pass"


def test_a_batch_after_the_lease_is_lost_writes_nothing(db: Database) -> None:
    run_id = _run(db)
    assert _claim(db, run_id, "me")
    assert _record(db, run_id, "me", _item(0))
    with db.session() as s:
        s.execute(update(EvalRun).where(EvalRun.id == run_id).values(status="canceled"))
    assert not _record(db, run_id, "me", *(_item(n) for n in range(1, 40)))
    run, items = _read(db, run_id)
    assert (run.status, items, run.result_counts["passed"]) == ("canceled", [0], 1)
    assert run.per_model_usage[0]["invocation_count"] == 1


def test_release_lets_the_next_runner_claim_at_once_and_finish_completes(db: Database) -> None:
    run_id = _run(db)
    assert _claim(db, run_id, "stopping")
    with db.session() as s:
        leases.release(s, run_id, "stopping")
    assert _claim(db, run_id, "next")
    with db.session() as s:
        assert leases.set_total(s, run_id, "next", 30.0, 7)
        assert leases.finish(s, run_id, "next", 30.0)
    run, _ = _read(db, run_id)
    assert (run.status, run.result_counts["total"], run.lease_owner) == ("completed", 7, None)
    assert run.finished_at is not None


def test_lines_are_split_across_chunks_with_their_numbers() -> None:
    chunks = [b'{"a":', b' 1}\n{"b": 2}\n\n{"c"', b": 3}"]
    assert list(_lines(chunks, 100, "file-x")) == [(1, b'{"a": 1}'), (2, b'{"b": 2}'), (3, b""), (4, b'{"c": 3}')]


def test_a_line_longer_than_the_limit_fails_naming_it() -> None:
    chunks = [b"ok\n", b"x" * 60, b"x" * 60]
    with pytest.raises(DataSourceError, match="Line 2 of the data source file file-x is longer than 100 bytes"):
        list(_lines(chunks, 100, "file-x"))
