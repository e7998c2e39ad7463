"""Migration 0005 on a database that already has keys (SQLite, and PostgreSQL when
HONE_TEST_POSTGRES is set): each existing key gets its own ``key_...`` id, the default name and a
user owner, keeps authenticating, and the downgrade removes what 0005 added."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, inspect, text

from service import auth
from service.db.session import MIGRATIONS_DIR, Database
from tests.harness.server import fresh_database_url


def _to(engine: Engine, revision: str, *, down: bool = False) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def test_0005_gives_existing_keys_ids_and_keeps_them_working(tmp_path: Path) -> None:
    url = fresh_database_url(tmp_path) or f"sqlite:///{tmp_path / 'hone.db'}"
    engine = create_engine(url)
    _to(engine, "0004")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO projects (id, name, created_at) VALUES ('proj_old', 'old', 1)"))
        for n, secret in enumerate(("sk-hone-first-secret-0000", "sk-hone-second-secret-000")):
            conn.execute(
                text(
                    "INSERT INTO api_keys (project_id, key_hash, display, created_at) "
                    "VALUES ('proj_old', :hash, :display, :n)"
                ),
                {"hash": auth.hash_secret(secret), "display": f"sk-hone-{n}...", "n": n},
            )
    _to(engine, "0005")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, name, service_account_id FROM api_keys ORDER BY seq")).all()
    assert len({r.id for r in rows}) == 2 and all(r.id.startswith("key_") for r in rows)
    assert {(r.name, r.service_account_id) for r in rows} == {(auth.DEFAULT_KEY_NAME, None)}
    db = Database(url)
    db.migrate()
    with db.session() as s:
        assert auth.authenticate(s, "Bearer sk-hone-first-secret-0000").id == "proj_old"
    db.dispose()
    _to(engine, "0004", down=True)
    inspector = inspect(engine)
    assert "service_accounts" not in inspector.get_table_names()
    assert "id" not in {c["name"] for c in inspector.get_columns("api_keys")}
    engine.dispose()
