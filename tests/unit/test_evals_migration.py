"""Migration 0008: it creates the three Evals API tables exactly as the models declare them,
an output item is unique per (run, data source item), and downgrading to 0007 drops them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.exc import IntegrityError

from service.auth import get_or_create_project
from service.db.schema import Eval, EvalOutputItem, EvalRun
from service.db.session import Database
from tests.harness.migrations import database_url, migrate, model_differences

TABLES = ("evals", "eval_runs", "eval_output_items")


def test_0008_creates_the_eval_tables_and_drops_them(tmp_path: Path) -> None:
    url = database_url(tmp_path)
    db = Database(url)
    db.migrate()
    for table in TABLES:
        assert model_differences(db.engine, table) == [], table
    with db.session() as s:
        project = get_or_create_project(s, "acme").id
        s.add(
            Eval(
                id="eval_1",
                project_id=project,
                name="e",
                data_source_config={},
                testing_criteria=[],
                metadata_={},
                created_at=1,
                updated_at=1,
            )
        )
        s.flush()
        s.add(
            EvalRun(
                id="evalrun_1",
                eval_id="eval_1",
                project_id=project,
                name="r",
                status="queued",
                data_source={},
                metadata_={},
                result_counts={},
                per_model_usage=[],
                per_testing_criteria_results=[],
                created_at=1,
            )
        )
    with pytest.raises(IntegrityError), db.session() as s:  # one output item per (run, data source item)
        for n in range(2):
            s.add(
                EvalOutputItem(
                    id=f"outputitem_{n}",
                    run_id="evalrun_1",
                    eval_id="eval_1",
                    project_id=project,
                    datasource_item_id=0,
                    status="pass",
                    datasource_item={},
                    results=[],
                    created_at=1,
                )
            )
            s.flush()
    db.dispose()
    engine = create_engine(url)
    migrate(engine, "0007", down=True)
    assert not set(TABLES) & set(inspect(engine).get_table_names())
    migrate(engine, "head")
    assert set(TABLES) <= set(inspect(engine).get_table_names())
    engine.dispose()
