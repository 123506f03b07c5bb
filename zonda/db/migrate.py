"""Run the Alembic migrations that ship inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

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
    it, so a DB it cannot reach is a ConfigError that says so, not a driver's traceback."""
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        raise ConfigError(
            f"cannot reach the metadata DB {engine.url.render_as_string(hide_password=True)} ({reason}); "
            "start it, or fix ZONDA_DB_URL"
        ) from exc
    command.upgrade(alembic_config(engine), "head")
