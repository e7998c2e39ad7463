"""Migration 0006 (SQLite, and PostgreSQL when HONE_TEST_POSTGRES is set): the table it creates is
the ``CheckpointPermission`` model exactly, one permission per (model, project) is enforced by
the database, and the downgrade removes it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.exc import IntegrityError

from service import auth
from service.db.schema import CheckpointPermission
from service.db.session import Database
from tests.harness.migrations import database_url, migrate, model_differences
from tests.harness.records import register_finished_model

TABLE = CheckpointPermission.__tablename__


def test_0006_creates_the_model_table_with_its_unique_pair_and_drops_it(tmp_path: Path) -> None:
    url = database_url(tmp_path)
    db = Database(url)
    db.migrate()
    assert model_differences(db.engine, TABLE) == []  # other tables are other migrations' business

    register_finished_model(db, "owner", "ft:hone-tiny:owner::Mig00001", "file:///x", job_id="ftjob-" + "m" * 24)
    with db.session() as s:
        grantee = auth.get_or_create_project(s, "grantee").id
    row = {"model_name": "ft:hone-tiny:owner::Mig00001", "project_id": grantee, "created_at": 1}
    with db.session() as s:
        s.add(CheckpointPermission(id="cp_first", **row))
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(CheckpointPermission(id="cp_second", **row))
    db.dispose()

    engine = create_engine(url)
    migrate(engine, "0005", down=True)
    assert TABLE not in inspect(engine).get_table_names()
    migrate(engine, "head")
    assert TABLE in inspect(engine).get_table_names()
    engine.dispose()
