"""Statements sent together (`dialect.pipelined`) on SQLite and on the real PostgreSQL server: what
they write, and how an error among them, or the end of the connection, reaches the caller."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from zonda.db.dialect import pipelined
from zonda.db.engine import make_engine


def test_statements_sent_together_are_written_and_an_error_among_them_is_raised_as_from_execute(
    engine: Engine,
) -> None:
    with engine.connect() as conn:
        conn.execute(text("CREATE TEMPORARY TABLE pairs (k INTEGER PRIMARY KEY, v INTEGER)"))
        with pipelined(conn):
            conn.execute(text("INSERT INTO pairs VALUES (:k, :v)"), [{"k": 1, "v": 1}, {"k": 2, "v": 2}])
            conn.execute(text("UPDATE pairs SET v = v + 10 WHERE k = 1"))
        conn.commit()
        assert conn.execute(text("SELECT k, v FROM pairs ORDER BY k")).all() == [(1, 11), (2, 2)]
        conn.commit()
        with pytest.raises(IntegrityError) as raised, pipelined(conn):
            conn.execute(text("UPDATE pairs SET v = 0"))
            conn.execute(text("INSERT INTO pairs VALUES (1, 0)"))
        assert not raised.value.connection_invalidated
        conn.rollback()
        assert conn.execute(text("SELECT k, v FROM pairs ORDER BY k")).all() == [(1, 11), (2, 2)], (
            "a statement before the failed one stayed written"
        )


@pytest.mark.postgres
def test_a_connection_the_db_ends_during_a_pipeline_is_said_to_be_gone(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn, engine.connect() as admin:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            conn.commit()
            with pytest.raises(DBAPIError) as raised, pipelined(conn):
                conn.execute(text("UPDATE runs SET state = state"))
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                admin.commit()
                conn.execute(text("UPDATE runs SET state = state"))
            assert raised.value.connection_invalidated, "the caller would retry on a dead connection"
    finally:
        engine.dispose()
