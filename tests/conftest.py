"""Shared fixtures: the tiny model, and a real hone server on a real port per test module."""

from __future__ import annotations

import atexit
import os
import socket
import uuid
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from service import auth
from service.catalog.catalog import BaseModelEntry, Catalog
from service.config import Settings


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from service.catalog.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "hone-tiny")


@pytest.fixture(scope="session")
def catalog(tiny_model_dir: Path) -> Catalog:
    return Catalog([BaseModelEntry(name="hone-tiny", source=str(tiny_model_dir), created=1700000000)])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    app: object
    settings: Settings
    base_url: str
    thread: threading.Thread
    server: object

    @property
    def ctx(self):  # type: ignore[no-untyped-def]
        return self.app.state.ctx  # type: ignore[attr-defined]

    def new_key(self, project: str) -> str:
        with self.ctx.db.session() as s:
            return auth.create_api_key(s, auth.get_or_create_project(s, project))

    def stop(self) -> None:
        self.server.should_exit = True  # type: ignore[attr-defined]
        self.thread.join(timeout=30)


POSTGRES_ADMIN_URL = os.environ.get("HONE_TEST_POSTGRES")  # e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres


def fresh_database_url(data_dir: Path) -> str | None:
    """With HONE_TEST_POSTGRES set, a new PostgreSQL database per server (dropped at exit);
    otherwise None, meaning SQLite in the data dir."""
    if not POSTGRES_ADMIN_URL:
        return None
    from sqlalchemy import create_engine, text

    name = f"hone_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    atexit.register(drop)
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def start_server(data_dir: Path, catalog: Catalog, *, launcher=None, port: int | None = None,  # type: ignore[no-untyped-def]
                 **overrides) -> RunningServer:
    import uvicorn

    from service.app import create_app

    port = port or free_port()
    if "database_url" not in overrides:
        overrides["database_url"] = fresh_database_url(data_dir)
    if launcher is None:
        overrides.setdefault("launcher", "none")  # jobs stay queued unless a test brings a launcher
    settings = Settings(data_dir=data_dir, host="127.0.0.1", port=port, loop_interval_s=0.2, **overrides)
    app = create_app(settings, launcher=launcher, catalog=catalog)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("hone server did not start")
        time.sleep(0.02)
    return RunningServer(app, settings, f"http://127.0.0.1:{port}", thread, server)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, catalog: Catalog) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("hone"), catalog)
    yield srv
    srv.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
