"""Shared fixtures: metadata DBs on SQLite and on the real PostgreSQL server; and a check that
pytest-xdist keeps each `xdist_group` on one worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.services import (
    AMQP_URL,
    PG_START,
    PG_URL,
    RABBITMQ_START,
    REDIS_START,
    REDIS_URL,
    broker_reachable,
    drop_pg_database,
    fresh_pg_database,
    pg_admin,
    service_missing,
)
from zonda.db.engine import make_engine
from zonda.db.migrate import upgrade


def pytest_configure(config: pytest.Config) -> None:
    """Under `--dist loadgroup`, pytest-xdist 3 puts the tests of one `xdist_group` on one worker by
    appending the group to their ids, which pytest 9 no longer lets it do: tests that restart the
    machine's RabbitMQ would then run beside those that use it. Refuse such a pytest."""
    if config.getoption("dist", "no") == "loadgroup" and pytest.version_tuple >= (9,):
        raise pytest.UsageError(
            f"pytest {pytest.__version__} breaks pytest-xdist's --dist loadgroup: install the pytest that "
            "pyproject.toml pins (`pip install -e '.[test]'`)"
        )


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The PostgreSQL server's URL (its `test` database), checked reachable."""
    admin = pg_admin()
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        service_missing("PostgreSQL", PG_START, exc)
    finally:
        admin.dispose()
    yield PG_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis server's URL (db 0), checked reachable; tests pick their own db number or names."""
    try:
        broker_reachable(REDIS_URL)
    except Exception as exc:
        service_missing("Redis", REDIS_START, exc)
    return REDIS_URL


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The RabbitMQ server's URL (default vhost), checked reachable."""
    try:
        broker_reachable(AMQP_URL)
    except Exception as exc:
        service_missing("RabbitMQ", RABBITMQ_START, exc)
    return AMQP_URL


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated metadata DB URL: once on SQLite, once on a fresh PostgreSQL database (`pg_url`)."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    url = f"sqlite:///{tmp_path / 'zonda.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database's URL (dropped afterwards), for tests of PostgreSQL only."""
    url, name = fresh_pg_database(pg_server)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    drop_pg_database(pg_server, name)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()
