"""Test helper: tenants, users with roles, and their API tokens, created in the metadata DB directly."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from zonda.core.permissions import Role
from zonda.db import identity, tenants
from zonda.db.engine import write_txn
from zonda.scheduler.wakeup import NullWaker
from zonda.services.context import Services
from zonda.services.identity import issue_token
from zonda.settings import Settings


def ensure_tenant(engine: Engine, tenant: str, **fields: object) -> None:
    """Create `tenant` unless it exists."""
    with write_txn(engine) as conn:
        if tenants.get_tenant(conn, tenant) is None:
            tenants.create_tenant(conn, tenant, {"display_name": tenant, "dag_folders": [], **fields}, _now())


def user_token(
    engine: Engine,
    settings: Settings,
    user: str,
    roles: dict[str, Role] | None = None,
    *,
    superuser: bool = False,
) -> str:
    """Create `user` with `roles` (tenants are created as needed) and return an API token of theirs."""
    for tenant in roles or {}:
        ensure_tenant(engine, tenant)
    with write_txn(engine) as conn:
        identity.create_user(conn, user, None, superuser, _now())
        for tenant, role in (roles or {}).items():
            identity.set_member(conn, tenant, user, role)
    return issue_token(Services(engine=engine, settings=settings, waker=NullWaker()), user, "test").token


def team_tokens(engine: Engine, settings: Settings) -> dict[str, str]:
    """Tokens of the usual cast: alice/olga/vera are admin/operator/viewer of team-a, bob is admin of
    team-b, root is a superuser."""
    return {
        "alice": user_token(engine, settings, "alice", {"team-a": Role.ADMIN}),
        "olga": user_token(engine, settings, "olga", {"team-a": Role.OPERATOR}),
        "vera": user_token(engine, settings, "vera", {"team-a": Role.VIEWER}),
        "bob": user_token(engine, settings, "bob", {"team-b": Role.ADMIN}),
        "root": user_token(engine, settings, "root", superuser=True),
    }


def admin_token(engine: Engine, settings: Settings) -> str:
    """A superuser's token (creates the `default` tenant too)."""
    ensure_tenant(engine, "default")
    return user_token(engine, settings, "root", superuser=True)


def _now() -> datetime:
    return datetime.now(UTC)
