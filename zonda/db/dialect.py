"""The few statements that differ between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, or update every non-key column of the rows whose `keys` already exist."""
    if not rows:
        return
    stmt = _insert(conn, table)
    columns = [c for c in rows[0] if c not in keys]
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns})
    conn.execute(stmt, list(rows))


def insert_new(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> list[tuple[Any, ...]]:
    """Insert rows, skipping those that hit a unique constraint; returns the `keys` of the rows inserted.

    One statement per batch (SQLAlchemy sends many rows as one multi-row INSERT ... RETURNING),
    which returns only the rows it inserted.
    """
    if not rows:
        return []
    stmt = _insert(conn, table).on_conflict_do_nothing().returning(*(table.c[k] for k in keys))
    return [tuple(r) for r in conn.execute(stmt, list(rows))]


def add_to(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, or add their non-key columns to those of the rows whose `keys` already exist."""
    if not rows:
        return
    stmt = _insert(conn, table)
    columns = [c for c in rows[0] if c not in keys]
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: table.c[c] + stmt.excluded[c] for c in columns}
    )
    conn.execute(stmt, list(rows))


def _insert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    module: Any = sqlite if conn.dialect.name == "sqlite" else postgresql
    return module.insert(table)
