"""The few statements that differ between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, or update every non-key column of the rows whose `keys` already exist."""
    if rows:
        conn.execute(
            _statement(conn.dialect.name, "upsert", table, tuple(keys), _columns(rows, keys)), list(rows)
        )


def insert_new(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> list[tuple[Any, ...]]:
    """Insert rows, skipping those that hit a unique constraint; returns the `keys` of the rows inserted.

    One statement per batch (SQLAlchemy sends many rows as one multi-row INSERT ... RETURNING),
    which returns only the rows it inserted.
    """
    if not rows:
        return []
    stmt = _statement(conn.dialect.name, "insert_new", table, tuple(keys), ())
    return [tuple(r) for r in conn.execute(stmt, list(rows))]


def add_to(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, or add their non-key columns to those of the rows whose `keys` already exist."""
    if rows:
        conn.execute(
            _statement(conn.dialect.name, "add_to", table, tuple(keys), _columns(rows, keys)), list(rows)
        )


def _columns(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> tuple[str, ...]:
    return tuple(c for c in rows[0] if c not in keys)


@functools.cache
def _statement(dialect: str, kind: str, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    """The dialect's INSERT ... ON CONFLICT of one kind, built once: the scheduler's writer runs
    these for every batch, and building one cost more than sending it."""
    stmt = (sqlite if dialect == "sqlite" else postgresql).insert(table)
    if kind == "insert_new":
        return stmt.on_conflict_do_nothing().returning(*(table.c[k] for k in keys))
    if kind == "add_to":
        return stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: table.c[c] + stmt.excluded[c] for c in columns}
        )
    return stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns})
