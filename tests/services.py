"""Real services for tests: URLs, start commands, and fail-in-CI / skip-on-a-laptop when one is down."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

PG_URL = os.environ.get("ZONDA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def service_missing(name: str, how_to_start: str, error: Exception) -> None:
    """In CI a missing service fails the test; on a laptop it skips with the command that starts it."""
    message = f"{name} is not reachable ({error}); start it with: {how_to_start}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def pg_admin() -> Engine:
    return create_engine(PG_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


def fresh_pg_database(server_url: str) -> tuple[str, str]:
    """Create an empty database on the server; returns (its URL, its name)."""
    name = f"zonda_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False), name


def drop_pg_database(server_url: str, name: str) -> None:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


REDIS_URL = os.environ.get("ZONDA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_START = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no '
    "--dir /var/lib/redis --logfile /var/log/redis/ci.log"
)
AMQP_URL = os.environ.get("ZONDA_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
RABBITMQ_START = "rabbitmq-server -detached"


def broker_reachable(url: str) -> None:
    """Connect to a Celery broker once (raises the connection error if it is down)."""
    from kombu import Connection

    with Connection(url, connect_timeout=3) as conn:
        conn.ensure_connection(max_retries=1)
