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
    module: Any = sqlite if conn.dialect.name == "sqlite" else postgresql
    stmt = module.insert(table)
    columns = [c for c in rows[0] if c not in keys]
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns})
    conn.execute(stmt, list(rows))


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    """Insert rows, skipping those that hit a unique constraint; returns how many were inserted."""
    if not rows:
        return 0
    module: Any = sqlite if conn.dialect.name == "sqlite" else postgresql
    result = conn.execute(module.insert(table).on_conflict_do_nothing(), list(rows))
    return int(result.rowcount or 0)
