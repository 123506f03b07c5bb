"""Run the Alembic migrations that ship inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from zonda.db.engine import driver_reason
from zonda.errors import ConfigError

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine) -> None:
    """Bring the metadata DB to the latest schema (idempotent). Every server process starts with
    it, so a DB it cannot reach, or one a newer Zonda upgraded, is a ConfigError that says what to
    do, not a driver's or Alembic's traceback."""
    config = alembic_config(engine)
    try:
        with engine.connect() as conn:
            refuse_newer_schema(conn, ScriptDirectory.from_config(config))
    except OperationalError as exc:
        raise ConfigError(
            f"cannot reach the metadata DB {engine.url.render_as_string(hide_password=True)} "
            f"({driver_reason(exc)}); "
            "start it, or fix ZONDA_DB_URL"
        ) from exc
    command.upgrade(config, "head")


def refuse_newer_schema(conn: Connection, scripts: ScriptDirectory) -> None:
    """A DB at a schema revision this release does not ship was upgraded by a later release (a
    deployment rolled back after its migrations ran): running against it would fail at random."""
    shipped = {script.revision for script in scripts.walk_revisions()}
    unknown = [rev for rev in MigrationContext.configure(conn).get_current_heads() if rev not in shipped]
    if unknown:
        raise ConfigError(
            f"the metadata DB {conn.engine.url.render_as_string(hide_password=True)} has schema revision "
            f"{', '.join(unknown)}, which this Zonda does not know (its latest is {scripts.get_current_head()}): "
            "a later Zonda upgraded it. Run that release or a later one, or restore the DB from a backup "
            "taken before that upgrade"
        )
