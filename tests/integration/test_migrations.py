"""The Alembic migrations build exactly the schema in zonda/db/schema.py, and carry old data along."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select, text

from zonda.db.engine import make_engine
from zonda.db.migrate import alembic_config, upgrade
from zonda.db.schema import dags, metadata, runs, tenants
from zonda.errors import ConfigError


def test_migrations_build_the_declared_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_rows_of_a_single_team_installation_move_to_the_default_tenant(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/old.db")
    command.upgrade(alembic_config(engine), "0003")
    now = datetime.now(UTC).isoformat()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO dags (dag_id, fileloc, latest_version, paused, active, owner, description, tags, "
                "timezone, created_at, updated_at) VALUES ('etl', '/d/etl.py', 1, 0, 1, '', '', '[]', 'UTC', :t, :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO runs (run_id, dag_id, version, state, params, trigger, created_at) "
                "VALUES ('r1', 'etl', 1, 'success', '{}', 'api', :t)"
            ),
            {"t": now},
        )
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(select(dags.c.dag_id, dags.c.tenant_id)).all() == [("default/etl", "default")]
        assert conn.execute(select(runs.c.dag_id, runs.c.tenant_id)).all() == [("default/etl", "default")]
        assert conn.execute(select(tenants.c.tenant_id)).scalars().all() == ["default"]
    engine.dispose()


def test_a_db_upgraded_by_a_later_release_is_refused_with_what_to_do(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0042_later_release'"))
    with pytest.raises(ConfigError) as error:
        upgrade(engine)
    message = str(error.value)
    assert "has schema revision 0042_later_release, which this Zonda does not know" in message
    assert "a later Zonda upgraded it" in message and "restore the DB from a backup" in message
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            "0042_later_release"
        ]
