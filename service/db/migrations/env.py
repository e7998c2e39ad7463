"""Alembic environment: runs on the connection handed over by ``service.db.session.migrate``
(or on ``sqlalchemy.url`` when invoked from the alembic CLI)."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from service.db import locks
from service.db.schema import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section) or {}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            locks.wait_lock(conn, locks.MIGRATIONS)  # the same lock as the API's migration at start
            context.run_migrations()


run()
