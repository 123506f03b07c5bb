"""The JSON shape of the audit log: who did what, to which object, when and from where."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from zonda.api.schemas import Timestamp


class AuditEntry(BaseModel):
    """One mutating action. `tenant_id` is null for platform-wide objects (users, their tokens, tenants)."""

    id: int
    at: Timestamp
    tenant_id: str | None = None
    actor: str
    action: str
    target: str
    details: dict[str, Any] = Field(default_factory=dict)
    origin: str = ""


class AuditPage(BaseModel):
    """One page of entries, newest first; pass `next_cursor` as `cursor` for older ones."""

    entries: list[AuditEntry]
    next_cursor: str | None = None
