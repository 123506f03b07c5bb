"""The pure access decision: each role x action, superusers, and tenants the principal has no role in."""

from __future__ import annotations

import pytest

from zonda.core.permissions import SYSTEM, Action, Decision, Principal, Role, decide

ALLOW, FORBIDDEN, HIDDEN = Decision.ALLOW, Decision.FORBIDDEN, Decision.HIDDEN

TABLE: dict[Role, dict[Action, Decision]] = {
    Role.VIEWER: {Action.READ: ALLOW, Action.OPERATE: FORBIDDEN, Action.ADMINISTER: FORBIDDEN},
    Role.OPERATOR: {Action.READ: ALLOW, Action.OPERATE: ALLOW, Action.ADMINISTER: FORBIDDEN},
    Role.ADMIN: {Action.READ: ALLOW, Action.OPERATE: ALLOW, Action.ADMINISTER: ALLOW},
}


@pytest.mark.parametrize(
    ("role", "action", "decision"),
    [(role, action, decision) for role, row in TABLE.items() for action, decision in row.items()],
)
def test_a_role_allows_its_actions_and_forbids_the_others_in_its_tenant(
    role: Role, action: Action, decision: Decision
) -> None:
    assert decide(Principal("ann", roles={"team-a": role}), "team-a", action) is decision


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(Action))
def test_another_tenant_is_hidden_whatever_the_role_elsewhere(role: Role, action: Action) -> None:
    assert decide(Principal("bob", roles={"team-b": role}), "team-a", action) is HIDDEN


@pytest.mark.parametrize("action", list(Action))
def test_a_principal_without_roles_sees_no_tenant(action: Action) -> None:
    assert decide(Principal("nobody"), "team-a", action) is HIDDEN


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("principal", [Principal("root", superuser=True), SYSTEM])
def test_superusers_and_zonda_itself_may_do_anything_in_any_tenant(
    principal: Principal, action: Action
) -> None:
    assert decide(principal, "team-a", action) is ALLOW
    assert decide(principal, "never-created", action) is ALLOW


def test_a_superuser_without_memberships_administers_every_tenant() -> None:
    root = Principal("root", superuser=True)
    assert root.role_in("team-a") is Role.ADMIN
    assert root.visible_tenants() is None


def test_roles_are_per_tenant() -> None:
    mixed = Principal("mia", roles={"team-a": Role.ADMIN, "team-b": Role.VIEWER})
    assert decide(mixed, "team-a", Action.ADMINISTER) is ALLOW
    assert decide(mixed, "team-b", Action.ADMINISTER) is FORBIDDEN
    assert decide(mixed, "team-b", Action.READ) is ALLOW
    assert decide(mixed, "team-c", Action.READ) is HIDDEN
    assert mixed.visible_tenants() == frozenset({"team-a", "team-b"})


def test_a_run_reads_its_own_tenant_only() -> None:
    run = Principal("run:r1", roles={"team-a": Role.VIEWER}, kind="run")
    assert decide(run, "team-a", Action.READ) is ALLOW
    assert decide(run, "team-a", Action.OPERATE) is FORBIDDEN
    assert decide(run, "team-b", Action.READ) is HIDDEN


def test_roles_are_ordered_each_including_the_ones_before() -> None:
    viewer, operator, admin = (
        {a for a in Action if decide(Principal("p", roles={"t": r}), "t", a) is ALLOW} for r in Role
    )
    assert viewer < operator < admin
    assert admin == set(Action)
