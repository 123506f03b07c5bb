"""Alembic environment: migrations run on the engine Zonda hands over (never reads alembic.ini)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine, text

from zonda.db.engine import write_txn
from zonda.db.schema import metadata

engine: Engine = context.config.attributes["engine"]
MIGRATION_LOCK = 7_426_001
"""PostgreSQL advisory lock: processes that start together migrate one after the other."""

with write_txn(engine) as connection:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
