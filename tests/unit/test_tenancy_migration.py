"""Migration 0005 on a database that already has keys (SQLite, and PostgreSQL when
HONE_TEST_POSTGRES is set): each existing key gets its own ``key_...`` id, the default name and a
user owner, keeps authenticating, and the downgrade removes what 0005 added."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect, text

from service import auth
from service.db.session import Database
from tests.harness.migrations import database_url, migrate


def test_0005_gives_existing_keys_ids_and_keeps_them_working(tmp_path: Path) -> None:
    url = database_url(tmp_path)
    engine = create_engine(url)
    migrate(engine, "0004")
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
    migrate(engine, "0005")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, name, service_account_id FROM api_keys ORDER BY seq")).all()
    assert len({r.id for r in rows}) == 2 and all(r.id.startswith("key_") for r in rows)
    assert {(r.name, r.service_account_id) for r in rows} == {(auth.DEFAULT_KEY_NAME, None)}
    db = Database(url)
    db.migrate()
    with db.session() as s:
        assert auth.authenticate(s, "Bearer sk-hone-first-secret-0000").id == "proj_old"
    db.dispose()
    migrate(engine, "0004", down=True)
    inspector = inspect(engine)
    assert "service_accounts" not in inspector.get_table_names()
    assert "id" not in {c["name"] for c in inspector.get_columns("api_keys")}
    engine.dispose()
