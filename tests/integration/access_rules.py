"""Who may call each REST route: one declared rule per route, and the pure expectation it gives per caller.

The table is the API's access policy in one screen: `test_permission_matrix.py` checks every route
of the running app against it, for every kind of caller, so a route added without an entry here
fails a test. Rules speak of the tenant the request targets (its `{tenant_id}`, the tenant part of
its `{dag_id}`, its run's tenant, or a `tenant_id` query); tenant rules reuse `core.permissions.decide`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from zonda.core.permissions import Action, Decision, Principal, decide


class Expect(StrEnum):
    """What a caller gets: the route's success, or one of the errors that keep tenants apart."""

    OK = "ok"
    UNAUTHENTICATED = "401"
    FORBIDDEN = "403"
    HIDDEN = "404"


class Rule(StrEnum):
    """The kinds of access rule; tenant rules carry their action in `Case.action`."""

    PUBLIC = "public"
    """Anyone, without credentials (health, login)."""
    AUTHENTICATED = "authenticated"
    """Any valid credential, a run's too; lists are filtered to what the caller may see."""
    USER = "user"
    """Any user; a run's credential is not a user's (401: it must log in as a user)."""
    SUPERUSER = "superuser"
    """Platform superusers only; everyone else 403 (the route names no tenant to hide)."""
    TENANT = "tenant"
    """`decide(caller, target tenant, action)`: HIDDEN -> 404, FORBIDDEN -> 403."""
    TENANT_SUPERUSER = "tenant-superuser"
    """A tenant's set-up: its members see the tenant but only superusers change it; others 404."""
    OTHER_USERS = "other-users"
    """Another user's object (a token): superusers only; everyone else 404, as if it did not exist."""
    ANY_ADMIN = "any-admin"
    """Admins of some tenant (their tenants' entries) and superusers; others 403."""


@dataclass(frozen=True)
class Case:
    """One way of calling a route, and the rule it answers to."""

    rule: Rule
    action: Action | None = None
    query: Mapping[str, str] = field(default_factory=dict)
    ok: tuple[int, ...] = ()
    """Statuses that mean "allowed" when the route's own success status cannot be reached."""


PUBLIC = Case(Rule.PUBLIC)
AUTHENTICATED = Case(Rule.AUTHENTICATED)
USER = Case(Rule.USER)
SUPERUSER = Case(Rule.SUPERUSER)
READ = Case(Rule.TENANT, Action.READ)
OPERATE = Case(Rule.TENANT, Action.OPERATE)
ADMINISTER = Case(Rule.TENANT, Action.ADMINISTER)
TENANT_SUPERUSER = Case(Rule.TENANT_SUPERUSER)
OTHER_USERS = Case(Rule.OTHER_USERS)
ANY_ADMIN = Case(Rule.ANY_ADMIN)

TENANT_A = "team-a"
"""The tenant every request of the matrix targets."""

RouteKey = tuple[str, str]
"""(HTTP method, path template as the app declares it)."""

RULES: Mapping[RouteKey, tuple[Case, ...]] = {
    ("GET", "/health"): (PUBLIC,),
    ("POST", "/api/v1/auth/login"): (PUBLIC,),
    ("GET", "/api/v1/auth/me"): (AUTHENTICATED,),
    # Tenants
    ("POST", "/api/v1/tenants"): (SUPERUSER,),
    ("GET", "/api/v1/tenants"): (AUTHENTICATED,),
    ("GET", "/api/v1/tenants/{tenant_id}"): (READ,),
    ("PATCH", "/api/v1/tenants/{tenant_id}"): (TENANT_SUPERUSER,),
    # A tenant that still owns DAGs and runs is not deleted (409): allowed, but refused for its content.
    ("DELETE", "/api/v1/tenants/{tenant_id}"): (Case(Rule.TENANT_SUPERUSER, ok=(409,)),),
    ("GET", "/api/v1/tenants/{tenant_id}/members"): (READ,),
    ("PUT", "/api/v1/tenants/{tenant_id}/members/{user_id}"): (ADMINISTER,),
    ("DELETE", "/api/v1/tenants/{tenant_id}/members/{user_id}"): (ADMINISTER,),
    # Users and tokens (the matrix's PATCH and DELETE name another user; a token, another user's)
    ("POST", "/api/v1/users"): (SUPERUSER,),
    ("GET", "/api/v1/users"): (AUTHENTICATED,),
    ("PATCH", "/api/v1/users/{user_id}"): (SUPERUSER,),
    ("DELETE", "/api/v1/users/{user_id}"): (SUPERUSER,),
    ("POST", "/api/v1/tokens"): (USER,),
    ("GET", "/api/v1/tokens"): (USER,),
    ("DELETE", "/api/v1/tokens/{token_id}"): (OTHER_USERS,),
    # DAGs
    ("GET", "/api/v1/dags"): (AUTHENTICATED,),
    ("GET", "/api/v1/import-errors"): (AUTHENTICATED,),
    ("GET", "/api/v1/dags/{dag_id:path}"): (READ,),
    ("PATCH", "/api/v1/dags/{dag_id:path}"): (OPERATE,),
    ("GET", "/api/v1/dags/{dag_id:path}/versions"): (READ,),
    ("GET", "/api/v1/dags/{dag_id:path}/versions/{version}"): (READ,),
    # Runs, task instances, logs, outputs
    ("POST", "/api/v1/dags/{dag_id:path}/runs"): (OPERATE,),
    ("POST", "/api/v1/dags/{dag_id:path}/backfill"): (OPERATE,),
    ("GET", "/api/v1/runs"): (AUTHENTICATED, Case(Rule.AUTHENTICATED, query={"dag_id": f"{TENANT_A}/etl"})),
    ("GET", "/api/v1/runs/{run_id}"): (READ,),
    ("POST", "/api/v1/runs/{run_id}/clear"): (OPERATE,),
    ("POST", "/api/v1/runs/{run_id}/cancel"): (OPERATE,),
    ("GET", "/api/v1/runs/{run_id}/tasks/{task_id}"): (READ,),
    ("GET", "/api/v1/runs/{run_id}/tasks/{task_id}/logs"): (READ,),
    ("GET", "/api/v1/runs/{run_id}/tasks/{task_id}/output"): (READ,),
    ("POST", "/api/v1/runs/{run_id}/tasks/{task_id}/mark"): (OPERATE,),
    # A tenant's set-up
    ("GET", "/api/v1/tenants/{tenant_id}/pools"): (READ,),
    ("PUT", "/api/v1/tenants/{tenant_id}/pools/{name}"): (ADMINISTER,),
    ("DELETE", "/api/v1/tenants/{tenant_id}/pools/{name}"): (ADMINISTER,),
    ("GET", "/api/v1/tenants/{tenant_id}/secrets"): (READ,),
    ("GET", "/api/v1/tenants/{tenant_id}/secrets/{name}"): (READ,),
    ("PUT", "/api/v1/tenants/{tenant_id}/secrets/{name}"): (ADMINISTER,),
    ("DELETE", "/api/v1/tenants/{tenant_id}/secrets/{name}"): (ADMINISTER,),
    # Reports
    ("GET", "/api/v1/usage"): (AUTHENTICATED, Case(Rule.TENANT, Action.READ, {"tenant_id": TENANT_A})),
    ("GET", "/api/v1/audit"): (ANY_ADMIN, Case(Rule.TENANT, Action.ADMINISTER, {"tenant_id": TENANT_A})),
    ("GET", "/api/v1/workers"): (AUTHENTICATED,),
    ("GET", "/api/v1/metrics/latency"): (
        AUTHENTICATED,
        Case(Rule.TENANT, Action.READ, {"tenant_id": TENANT_A}),
        Case(Rule.TENANT, Action.READ, {"dag_id": f"{TENANT_A}/etl"}),
    ),
    ("GET", "/api/v1/metrics/system"): (AUTHENTICATED,),
    ("GET", "/metrics"): (AUTHENTICATED,),
}


def expect(case: Case, caller: Principal | None, tenant: str | None) -> Expect:
    """What `caller` (None: no valid credentials) gets from a request of `case` that targets `tenant`."""
    if case.rule is Rule.PUBLIC:
        return Expect.OK
    if caller is None or (case.rule is Rule.USER and caller.kind != "user"):
        return Expect.UNAUTHENTICATED
    if case.rule in (Rule.AUTHENTICATED, Rule.USER):
        return Expect.OK
    if case.rule is Rule.SUPERUSER:
        return Expect.OK if caller.superuser else Expect.FORBIDDEN
    if case.rule is Rule.OTHER_USERS:
        return Expect.OK if caller.superuser else Expect.HIDDEN
    if case.rule is Rule.ANY_ADMIN:
        admin = caller.superuser or any(
            decide(caller, t, Action.ADMINISTER) is Decision.ALLOW for t in caller.roles
        )
        return Expect.OK if admin else Expect.FORBIDDEN
    assert tenant is not None, f"a {case.rule} rule needs the request's target tenant"
    if case.rule is Rule.TENANT_SUPERUSER:
        seen = decide(caller, tenant, Action.READ) is Decision.ALLOW
        return Expect.HIDDEN if not seen else Expect.OK if caller.superuser else Expect.FORBIDDEN
    assert case.action is not None, "a tenant rule names its action"
    return _DECISIONS[decide(caller, tenant, case.action)]


_DECISIONS = {Decision.ALLOW: Expect.OK, Decision.FORBIDDEN: Expect.FORBIDDEN, Decision.HIDDEN: Expect.HIDDEN}
