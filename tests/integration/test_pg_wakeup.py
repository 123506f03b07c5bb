"""Wake-ups through PostgreSQL NOTIFY: the API's waker and a scheduler's listener on a real server."""

from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from zonda.db.engine import make_engine
from zonda.scheduler.pg_wakeup import WAKER_NAME, PostgresListener, PostgresWaker


def received(listener: PostgresListener, timeout: float = 5.0) -> set[str]:
    """The topics that arrive within `timeout` seconds (empty if none does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if topics := listener.drain():
            return topics
        time.sleep(0.01)
    return set()


def waker_backends(engine: Engine) -> list[int]:
    """Server pids of the waker connections to this database."""
    query = text(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = :name"
    )
    with engine.connect() as conn:
        return [int(pid) for pid in conn.execute(query, {"name": WAKER_NAME}).scalars()]


def test_wake_ups_arrive_on_one_kept_connection_and_after_the_db_ends_it(pg_url: str) -> None:
    engine = make_engine(pg_url)
    waker = PostgresWaker(engine)
    listener = PostgresListener(pg_url)
    try:
        waker.wake("runs")
        assert received(listener) == {"runs"}
        waker.wake("commands")
        assert received(listener) == {"commands"}
        backends = waker_backends(engine)
        assert len(backends) == 1, f"each wake-up opened a connection of its own: {backends}"

        with engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backends[0]})
            admin.commit()
        waker.wake("secrets")
        assert received(listener) == {"secrets"}, "the wake-up after the DB ended the connection was lost"
        assert waker_backends(engine) not in ([], backends)
    finally:
        waker.close()
        listener.close()
        engine.dispose()


def test_a_wake_up_the_db_cannot_take_is_logged_not_raised(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    nothing_listens = make_url(pg_url).set(port=1).render_as_string(hide_password=False)
    nowhere = make_engine(nothing_listens)
    with caplog.at_level(logging.WARNING):
        PostgresWaker(nowhere).wake("runs")
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["could not notify the scheduler"]
    nowhere.dispose()
