"""Migration 0006 (SQLite, and PostgreSQL when HONE_TEST_POSTGRES is set): the table it creates is
the ``CheckpointPermission`` model exactly, one permission per (model, project) is enforced by
the database, and the downgrade removes it."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect
from sqlalchemy.exc import IntegrityError

from service import auth
from service.db.schema import Base, CheckpointPermission
from service.db.session import MIGRATIONS_DIR, Database
from tests.harness.records import register_finished_model
from tests.harness.server import fresh_database_url

TABLE = CheckpointPermission.__tablename__


def _to(engine: Engine, revision: str, *, down: bool = False) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def test_0006_creates_the_model_table_with_its_unique_pair_and_drops_it(tmp_path: Path) -> None:
    url = fresh_database_url(tmp_path) or f"sqlite:///{tmp_path / 'hone.db'}"
    db = Database(url)
    db.migrate()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if TABLE in repr(d)] == []  # other tables are other migrations' business

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
    _to(engine, "0005", down=True)
    assert TABLE not in inspect(engine).get_table_names()
    _to(engine, "head")
    assert TABLE in inspect(engine).get_table_names()
    engine.dispose()
