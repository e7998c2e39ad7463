"""Control-plane replicas that start together on an empty PostgreSQL database all migrate it
without error (issue 11, finding 8): the migration holds an advisory lock, so one replica
upgrades and the others wait, then find the database at head. Real PostgreSQL
(``HONE_TEST_POSTGRES``, else 127.0.0.1:5432 with trust auth), a fresh database per test."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from service.db.session import MIGRATIONS_DIR

ADMIN_URL = os.environ.get("HONE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REPLICAS = 4
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def empty_database() -> Iterator[str]:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"hone_test_migrate_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as e:
        admin.dispose()
        pytest.skip(f"needs PostgreSQL at {ADMIN_URL}: {str(e).splitlines()[0]}")
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# One control-plane replica's start, as a process of its own: import, wait for the start signal
# (a file), migrate. Alembic keeps process-global state, so threads could not stand in for replicas.
REPLICA = """
import sys, time
from pathlib import Path
from service.db.session import Database
db = Database(sys.argv[1])
print("ready", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.001)
db.migrate()
"""


def test_replicas_migrating_an_empty_database_at_once_all_succeed(empty_database: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", REPLICA, empty_database, str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(REPLICAS)
    ]
    try:
        for p in replicas:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        go.touch()  # all at once
        results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in replicas]
    finally:
        for p in replicas:
            if p.poll() is None:
                p.kill()
    failures = [
        next((x for x in reversed(err.splitlines()) if "Error" in x), err[-300:]) for code, err in results if code
    ]
    assert not failures, failures
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    engine = create_engine(empty_database)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
            assert conn.execute(text("SELECT count(*) FROM jobs")).scalar() == 0
    finally:
        engine.dispose()
