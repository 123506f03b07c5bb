"""The audit log: one row per mutating action (who, when, what, from where).

Reading is keyset-paginated on the entry id, newest first (ids grow with time), so a page costs one
index range scan however deep the caller pages. The cursor is opaque to callers (base64 of JSON).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, insert, or_, select

from zonda.api.schemas.audit import AuditEntry, AuditPage
from zonda.db.schema import audit_log

_INSERT = insert(audit_log)
"""Built once: every change through the API writes an entry."""


def add_entry(
    conn: Connection,
    *,
    at: datetime,
    tenant_id: str | None,
    actor: str,
    action: str,
    target: str,
    details: dict[str, Any],
    origin: str,
) -> None:
    conn.execute(
        _INSERT,
        {
            "at": at,
            "tenant_id": tenant_id,
            "actor": actor,
            "action": action,
            "target": target,
            "details": details,
            "origin": origin,
        },
    )


@dataclass(frozen=True)
class AuditFilter:
    """Which entries to list. `tenants` None means every entry, including those of no tenant."""

    tenants: frozenset[str] | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None


def list_entries(
    conn: Connection, where: AuditFilter, limit: int = 50, cursor: str | None = None
) -> AuditPage:
    """One page of entries matching `where`, newest first; raises ValueError for a bad cursor."""
    filters = _filters(where)
    if cursor:
        filters.append(audit_log.c.id < decode_cursor(cursor))
    query = select(audit_log).where(*filters).order_by(audit_log.c.id.desc()).limit(limit + 1)
    rows = conn.execute(query).all()
    page = [AuditEntry.model_validate(r._asdict()) for r in rows[:limit]]
    return AuditPage(entries=page, next_cursor=encode_cursor(page[-1].id) if len(rows) > limit else None)


def encode_cursor(entry_id: int) -> str:
    """The opaque cursor that continues a listing after this entry."""
    return base64.urlsafe_b64encode(json.dumps([entry_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The entry id a cursor points after; ValueError if it is not one of ours."""
    try:
        (entry_id,) = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError(
            f"cursor {cursor!r} is not valid; pass the next_cursor of the previous page"
        ) from exc
    if not isinstance(entry_id, int) or isinstance(entry_id, bool):
        raise ValueError(f"cursor {cursor!r} is not valid; pass the next_cursor of the previous page")
    return entry_id


def _filters(where: AuditFilter) -> list[ColumnElement[bool]]:
    c = audit_log.c
    filters: list[ColumnElement[bool]] = []
    if where.tenants is not None:
        filters.append(c.tenant_id.in_(sorted(where.tenants)))
    if where.actor is not None:
        filters.append(c.actor == where.actor)
    if where.action is not None:
        filters.append(
            or_(c.action == where.action, c.action.startswith(f"{where.action}.", autoescape=True))
        )
    if where.since is not None:
        filters.append(c.at >= where.since)
    return filters
