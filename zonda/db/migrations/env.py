"""Alembic environment: migrations run on the engine Zonda hands over (never reads alembic.ini)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from zonda.db.engine import write_txn
from zonda.db.schema import metadata

engine: Engine = context.config.attributes["engine"]
with write_txn(engine) as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
