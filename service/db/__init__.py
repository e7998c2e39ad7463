"""Persistence: SQLAlchemy 2 tables, the engine/session factory and Alembic migrations."""
