"""Wake-ups through PostgreSQL NOTIFY: the API's waker and a scheduler's listener on a real server."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from zonda.db.engine import make_engine
from zonda.scheduler import pg_wakeup
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


def test_wake_ups_from_many_threads_at_once_all_arrive(pg_url: str) -> None:
    engine = make_engine(pg_url)
    waker = PostgresWaker(engine)
    listener = PostgresListener(pg_url)
    topics = ["runs", "commands", "dags", "pools", "tenants", "secrets"]
    try:
        barrier = threading.Barrier(len(topics))

        def wake(topic: str) -> None:
            barrier.wait()
            waker.wake(topic)

        threads = [threading.Thread(target=wake, args=(t,)) for t in topics]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        arrived: set[str] = set()
        deadline = time.monotonic() + 5
        while arrived != set(topics) and time.monotonic() < deadline:
            arrived |= received(listener, 0.2)
        assert arrived == set(topics)
    finally:
        waker.close()
        listener.close()
        engine.dispose()


def test_while_the_db_does_not_answer_one_request_waits_for_it_not_every_one_in_turn(
    pg_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_wakeup, "CONNECT_TIMEOUT", 2)
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections and never answers
    silent.listen(16)
    unanswered = make_url(pg_url).set(host="127.0.0.1", port=silent.getsockname()[1])
    engine = make_engine(unanswered.render_as_string(hide_password=False))
    waker = PostgresWaker(engine)
    took: list[float] = []

    def wake() -> None:
        began = time.monotonic()
        waker.wake("runs")
        took.append(time.monotonic() - began)

    try:
        with caplog.at_level(logging.WARNING):
            first = threading.Thread(target=wake)
            first.start()
            time.sleep(0.3)  # the first wake-up is waiting for the connection
            others = [threading.Thread(target=wake) for _ in range(5)]
            for thread in others:
                thread.start()
            for thread in others:
                thread.join(timeout=10)
            quick = sorted(took)
            first.join(timeout=10)
        assert len(quick) == 5 and quick[-1] < 0.5, f"the others waited behind the first: {quick}"
        assert max(took) >= 1.5, "the first wake-up waited for the connection"
        warnings = [r for r in caplog.records if r.getMessage().startswith("could not notify the scheduler")]
        assert len(warnings) == 1, "one attempt to reach the DB, not one per request"
    finally:
        waker.close()
        engine.dispose()
        silent.close()
