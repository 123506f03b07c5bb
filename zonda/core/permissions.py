"""Who may do what in which tenant: roles, actions and the one pure access decision.

A principal holds a role per tenant (or is a superuser, who administers every tenant). The
decision for a tenant the principal has no role in is `HIDDEN`, not `FORBIDDEN`: the API answers
404 for another tenant's objects, so that their names cannot be discovered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    """A user's role in one tenant; each includes the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


class Action(StrEnum):
    """What a request does to a tenant's objects."""

    READ = "read"
    OPERATE = "operate"
    """Trigger, clear, cancel, pause: changes runs, not the tenant's set-up."""
    ADMINISTER = "administer"
    """Secrets, members, pools, tenant settings."""


ROLE_ACTIONS: Mapping[Role, frozenset[Action]] = {
    Role.VIEWER: frozenset({Action.READ}),
    Role.OPERATOR: frozenset({Action.READ, Action.OPERATE}),
    Role.ADMIN: frozenset({Action.READ, Action.OPERATE, Action.ADMINISTER}),
}


class Decision(StrEnum):
    ALLOW = "allow"
    FORBIDDEN = "forbidden"
    """The principal sees the tenant but its role does not allow the action (403)."""
    HIDDEN = "hidden"
    """The principal has no role in the tenant: the object does not exist for it (404)."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user (by password or API token) or a task run (by its run token)."""

    name: str
    superuser: bool = False
    roles: Mapping[str, Role] = field(default_factory=dict)
    kind: str = "user"

    def role_in(self, tenant: str) -> Role | None:
        """The principal's role in `tenant`; superusers administer every tenant."""
        return Role.ADMIN if self.superuser else self.roles.get(tenant)

    def visible_tenants(self) -> frozenset[str] | None:
        """The tenants whose objects the principal may see; None means every tenant."""
        return None if self.superuser else frozenset(self.roles)


SYSTEM = Principal(name="zonda", superuser=True, kind="system")
"""Zonda itself (the embedded CLI's local commands, bootstrapping): every right."""


def decide(principal: Principal, tenant: str, action: Action) -> Decision:
    """May `principal` perform `action` on an object of `tenant`?"""
    role = principal.role_in(tenant)
    if role is None:
        return Decision.HIDDEN
    return Decision.ALLOW if action in ROLE_ACTIONS[role] else Decision.FORBIDDEN
