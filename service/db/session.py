"""Engine and session factory; migrations are applied with Alembic at start."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service.db import locks
from service.errors import DatabaseUnavailable, InvalidRequest

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_AFTER_COMMIT = "hone_after_commit"
log = logging.getLogger(__name__)


def after_commit(session: Session, effect: Callable[[], None]) -> None:
    """Run ``effect`` once ``session``'s unit of work has committed, never if it rolls back.

    For effects outside the database that must not happen unless the change is durable (deleting
    a blob a deleted row pointed at, withdrawing a model from serving): a failed commit then
    never loses data, and a failed effect leaves at worst an orphaned blob, never a dangling row.
    """
    session.info.setdefault(_AFTER_COMMIT, []).append(effect)


# Connections kept open per process: at least the request threads (anyio's 40) plus the loops,
# so a busy API never waits for a connection nor opens and closes one per request.
POOL_SIZE, MAX_OVERFLOW = 48, 16


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        in_memory = path in ("", ":memory:") or path.startswith("file::memory:")
        if in_memory:  # one connection, one database: SQLAlchemy's own pool for it
            return create_engine(url, connect_args={"check_same_thread": False})
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as conn:  # WAL is a property of the file: set it once
            conn.execute("PRAGMA journal_mode=WAL")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        event.listen(engine, "before_cursor_execute", _write_lock_before_select_for_update)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW)


def _write_lock_before_select_for_update(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
    """Give ``SELECT ... FOR UPDATE`` its meaning on SQLite, which drops the clause: a transaction
    that opens with one takes the database's write lock first (``BEGIN IMMEDIATE``), so the row it
    reads cannot change before it writes. Without this, the driver begins a transaction only at
    the first write, and two read-then-write units (a cancel and the validator passing the same
    job) both read the old row and the later commit silently undid the earlier one.
    """
    compiled = getattr(context, "compiled", None)
    # SQLAlchemy keeps the clause on the statement (``_for_update_arg``) and only the SQLite
    # compiler leaves it out; tests/integration/test_row_locks.py fails should that ever change.
    if getattr(getattr(compiled, "statement", None), "_for_update_arg", None) is None:
        return
    if not conn.connection.dbapi_connection.in_transaction:  # a write already holds the lock
        cursor.execute("BEGIN IMMEDIATE")


def migrate(engine: Engine) -> None:
    """Bring the database to the newest Alembic revision. Replicas that start together wait for
    each other (an advisory lock on PostgreSQL, held by the migration's transaction)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        locks.wait_lock(conn, locks.MIGRATIONS)  # env.py runs the upgrade in this same transaction
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _rollback_quietly(s: Session) -> None:
    try:
        s.rollback()
    except OperationalError:  # the connection is gone; nothing to roll back on it
        log.warning("rollback failed: the database connection is gone")


class Database:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        migrate(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on any exception."""
        with self._sessions() as s:
            try:
                yield s
                s.commit()
            except DataError as e:  # a value the database cannot store (PostgreSQL: a NUL in a string)
                s.info.pop(_AFTER_COMMIT, None)
                _rollback_quietly(s)
                raise InvalidRequest("A value in the request cannot be stored (e.g. it holds a NUL character).") from e
            except OperationalError as e:  # unreachable, restarting, or (SQLite) locked past its timeout
                s.info.pop(_AFTER_COMMIT, None)
                _rollback_quietly(s)
                raise DatabaseUnavailable() from e
            except BaseException:
                s.info.pop(_AFTER_COMMIT, None)
                _rollback_quietly(s)
                raise
            for effect in s.info.pop(_AFTER_COMMIT, []):
                try:
                    effect()
                except Exception:  # the change is committed; the effect's failure is logged, not raised
                    log.exception("an after-commit effect failed")

    def dispose(self) -> None:
        self.engine.dispose()
