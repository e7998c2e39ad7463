"""A real hone server (uvicorn, real HTTP on a loopback port) in a thread of this process, on
SQLite in its data dir or, with ``HONE_TEST_POSTGRES`` set, on a fresh PostgreSQL database."""

from __future__ import annotations

import atexit
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service import auth
from service.catalog.catalog import Catalog
from service.config import Settings
from tests.harness.ports import free_port

POSTGRES_ADMIN_URL = os.environ.get("HONE_TEST_POSTGRES")  # e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres


@dataclass
class RunningServer:
    app: Any
    settings: Settings
    base_url: str
    thread: threading.Thread
    server: Any

    @property
    def ctx(self) -> Any:
        return self.app.state.ctx

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"

    def new_key(self, project: str) -> str:
        with self.ctx.db.session() as s:
            return auth.create_api_key(s, auth.get_or_create_project(s, project))

    def new_admin_key(self, name: str = "test admin") -> str:
        with self.ctx.db.session() as s:
            return auth.create_admin_key(s, name)[1]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


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


def start_server(
    data_dir: Path, catalog: Catalog, *, launcher: Any = None, port: int | None = None, **overrides: Any
) -> RunningServer:
    """Start hone on ``port`` (a free one by default) and return once it accepts requests.
    Without a ``launcher`` jobs stay queued (``launcher`` backend ``none``)."""
    import uvicorn

    from service.app import create_app

    port = port or free_port()
    if "database_url" not in overrides:
        overrides["database_url"] = fresh_database_url(data_dir)
    if launcher is None:
        overrides.setdefault("launcher", "none")
    overrides.setdefault("loop_interval_s", 0.2)
    settings = Settings(data_dir=data_dir, host="127.0.0.1", port=port, **overrides)
    app = create_app(settings, launcher=launcher, catalog=catalog)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("hone server did not start")
        time.sleep(0.02)
    return RunningServer(app, settings, f"http://127.0.0.1:{port}", thread, server)


def serve_app(app: Any) -> tuple[str, Any]:
    """Any ASGI app (e.g. a fake upstream) on a free loopback port in a thread; returns its URL
    and the uvicorn server (set ``should_exit`` to stop it)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}", server
