"""The audit log. Writing: each mutating service function calls `record` in its own transaction,
so an action and its audit entry are committed together or not at all. Reading: tenant admins read
their tenants' entries (ADMINISTER: the log shows who holds which role and which secrets exist);
superusers read every entry, including platform-wide ones (users, tokens) that have no tenant.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from zonda.api.schemas.audit import AuditPage
from zonda.core.permissions import Action, Decision, decide
from zonda.db.audit import AuditFilter, add_entry, decode_cursor, list_entries
from zonda.db.engine import read_txn
from zonda.errors import ParamsError, PermissionDeniedError
from zonda.services.access import require

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from zonda.services.context import Services


def record(
    conn: Connection, svc: Services, tenant: str | None, action: str, target: str, details: dict[str, Any]
) -> None:
    """Add the audit entry of `action` (e.g. `run.trigger`) on `target`, by the caller, in `tenant`."""
    add_entry(
        conn,
        at=svc.now(),
        tenant_id=tenant,
        actor=svc.principal.name,
        action=action,
        target=target,
        details=details,
        origin=svc.origin,
    )


def list_audit(
    svc: Services,
    *,
    tenant: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> AuditPage:
    """One page of entries, newest first (a naive `since` is UTC). `action` matches exactly or as its
    noun (`secret` matches `secret.set`, `secret.delete`, ...).

    Without `tenant`, the entries of every tenant the caller administers (superusers: all entries).
    Raises NotFoundError for another tenant, PermissionDeniedError for a role below admin.
    """
    if cursor:
        _check_cursor(cursor)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    where = AuditFilter(_readable(svc, tenant), actor, action, since)
    with read_txn(svc.engine) as conn:
        return list_entries(conn, where, limit, cursor)


def _readable(svc: Services, tenant: str | None) -> frozenset[str] | None:
    """The tenants whose entries the caller asks for and may read (None: all entries, superusers)."""
    if tenant is not None:
        require(svc, tenant, Action.ADMINISTER, f"tenant '{tenant}'")
        return frozenset({tenant})
    if svc.principal.superuser:
        return None
    administered = frozenset(
        t for t in svc.principal.roles if decide(svc.principal, t, Action.ADMINISTER) is Decision.ALLOW
    )
    if not administered:
        raise PermissionDeniedError(
            "the audit log is read by tenant admins (their tenants' entries) and superusers; "
            "you are admin of no tenant"
        )
    return administered


def _check_cursor(cursor: str) -> None:
    try:
        decode_cursor(cursor)
    except ValueError as exc:
        raise ParamsError(str(exc), [{"param": "cursor", "message": str(exc)}]) from exc
