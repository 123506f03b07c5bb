"""The few statements that differ between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import psycopg
from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, or update every non-key column of the rows whose `keys` already exist."""
    if rows:
        conn.execute(_upsert(conn.dialect.name, table, tuple(keys), _columns(rows, keys)), list(rows))


def insert_new(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> list[tuple[Any, ...]]:
    """Insert rows, skipping those that hit a unique constraint; returns the `keys` of the rows inserted.

    One statement per batch (SQLAlchemy sends many rows as one multi-row INSERT ... RETURNING),
    which returns only the rows it inserted.
    """
    if not rows:
        return []
    return [tuple(r) for r in conn.execute(_insert_new(conn.dialect.name, table, tuple(keys)), list(rows))]


def add_to(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, or add their non-key columns to those of the rows whose `keys` already exist."""
    if rows:
        conn.execute(_add_to(conn.dialect.name, table, tuple(keys), _columns(rows, keys)), list(rows))


@contextmanager
def pipelined(conn: Connection) -> Iterator[None]:
    """Send the statements run inside together: PostgreSQL's pipeline mode, one round trip for all
    of them instead of one each (on SQLite, as they come). None of them may return rows: SQLAlchemy
    looks at a result before the pipeline has it. An error the DB reports when the pipeline ends
    is raised as from `conn.execute`: SQLAlchemy's `DBAPIError`, and a connection found gone is
    invalidated."""
    if conn.dialect.name != "postgresql":
        yield
        return
    driver = cast("psycopg.Connection[Any]", conn.connection.driver_connection)
    try:
        with driver.pipeline():
            yield
    except psycopg.Error as exc:
        if driver.broken:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            None, None, exc, psycopg.Error, connection_invalidated=driver.broken
        ) from exc


# The statements are built once per table and columns: the scheduler's writer runs them for every
# batch, and building one cost more than sending it.


@functools.cache
def _upsert(dialect: str, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    stmt = _insert(dialect, table)
    return stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns})


@functools.cache
def _insert_new(dialect: str, table: Table, keys: tuple[str, ...]) -> Any:
    return _insert(dialect, table).on_conflict_do_nothing().returning(*(table.c[k] for k in keys))


@functools.cache
def _add_to(dialect: str, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    stmt = _insert(dialect, table)
    return stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: table.c[c] + stmt.excluded[c] for c in columns}
    )


def _insert(dialect: str, table: Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    return (sqlite if dialect == "sqlite" else postgresql).insert(table)


def _columns(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> tuple[str, ...]:
    return tuple(c for c in rows[0] if c not in keys)
