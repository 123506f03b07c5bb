"""The few statements that differ between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import psycopg
from sqlalchemy import Connection, Dialect, Table, bindparam, func, select
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


def insert_new_sent(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> Sent:
    """`insert_new` sent inside `pipelined` on PostgreSQL, the rows as one array per column: the keys
    of the rows it inserted are read once the pipeline has ended."""
    columns = tuple(rows[0])
    return send(
        conn, _insert_new_arrays(table, tuple(keys), columns), {c: [r[c] for r in rows] for c in columns}
    )


def add_to(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, or add their non-key columns to those of the rows whose `keys` already exist."""
    if rows:
        conn.execute(_add_to(conn.dialect.name, table, tuple(keys), _columns(rows, keys)), list(rows))


def ends_session(error: BaseException) -> bool:
    """Whether PostgreSQL said the session is over (a FATAL error: the backend was terminated, the
    server is shutting down), which the driver may report before it sees the socket close."""
    return isinstance(error, psycopg.Error) and error.diag.severity_nonlocalized == "FATAL"


@contextmanager
def pipelined(conn: Connection) -> Iterator[None]:
    """Send the statements run inside together: PostgreSQL's pipeline mode, one round trip for all
    of them instead of one each (on SQLite, as they come). None of them may return rows: SQLAlchemy
    looks at a result before the pipeline has it. An error the DB reports when the pipeline ends
    is raised as from `conn.execute`: SQLAlchemy's `DBAPIError`, and a connection found gone (or
    told it is ending) is invalidated."""
    if conn.dialect.name != "postgresql":
        yield
        return
    driver = cast("psycopg.Connection[Any]", conn.connection.driver_connection)
    try:
        with driver.pipeline():
            yield
    except psycopg.Error as exc:
        gone = driver.broken or ends_session(exc)
        if gone:
            conn.invalidate(exc)
        raise DBAPIError.instance(None, None, exc, psycopg.Error, connection_invalidated=gone) from exc


class Sent:
    """A statement sent inside `pipelined` (`send`): its rows, read once the pipeline has ended."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    def rows(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall()


def send(conn: Connection, stmt: Any, params: dict[str, Any]) -> Sent:
    """Send a statement that returns rows inside `pipelined` on PostgreSQL, without waiting for
    them: SQLAlchemy reads a result as soon as it sends its statement, before the pipeline has it
    (and psycopg's `executemany` waits for rows it returns). Parameters go through the columns'
    types, as with `conn.execute`."""
    sql, processors = _compiled(conn.dialect, stmt)
    driver = cast("psycopg.Connection[Any]", conn.connection.driver_connection)
    cursor = driver.cursor()
    cursor.execute(sql, {k: processors[k](v) if k in processors else v for k, v in params.items()})
    return Sent(cursor)


@functools.lru_cache(maxsize=64)
def _compiled(dialect: Dialect, stmt: Any) -> tuple[str, dict[str, Callable[[Any], Any]]]:
    """A statement's SQL for the driver, and its parameters' type conversions by name (per engine's
    dialect: a process has one or two engines, tests many)."""
    compiled = stmt.compile(dialect=dialect)
    processors = {name: bind.type.bind_processor(dialect) for name, bind in compiled.binds.items()}
    return str(compiled), {name: p for name, p in processors.items() if p is not None}


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
def _insert_new_arrays(table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    """`_insert_new` of rows given as one array parameter per column (PostgreSQL's `unnest`)."""
    arrays = [func.unnest(bindparam(c, type_=postgresql.ARRAY(table.c[c].type))) for c in columns]
    stmt = postgresql.insert(table).from_select(list(columns), select(*arrays))
    return stmt.on_conflict_do_nothing().returning(*(table.c[k] for k in keys))


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
