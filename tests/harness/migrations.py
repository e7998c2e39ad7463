"""Migration tests' helpers: a database at a chosen alembic revision (SQLite in the test's
directory, or a fresh PostgreSQL database when HONE_TEST_POSTGRES is set), and the differences
between a migrated database and the SQLAlchemy models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from service.db.schema import Base
from service.db.session import MIGRATIONS_DIR
from tests.harness.server import fresh_database_url


def database_url(tmp_path: Path) -> str:
    return fresh_database_url(tmp_path) or f"sqlite:///{tmp_path / 'hone.db'}"


def migrate(engine: Engine, revision: str, *, down: bool = False) -> None:
    """Upgrade (or with ``down``, downgrade) the database to ``revision``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def model_differences(engine: Engine, table: str) -> list[Any]:
    """What alembic's autogenerate would change in ``table`` to match the models (empty when the
    migrations built it exactly)."""
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    return [d for d in diff if table in repr(d)]
