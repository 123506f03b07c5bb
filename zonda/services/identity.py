"""Who is calling: token authentication, password login, users, API tokens and tenant members."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError

from zonda.api.schemas.identity import (
    MemberRecord,
    MemberSpec,
    NewTokenRecord,
    TokenCreate,
    TokenRecord,
    UserCreate,
    UserPatch,
    UserRecord,
)
from zonda.auth import tokens
from zonda.auth.keys import RUN_TOKEN_PREFIX, secret_keys, verify_run_token
from zonda.auth.passwords import hash_password, verify_password
from zonda.core.permissions import Action, Principal, Role
from zonda.core.states import RunState
from zonda.db import identity as db
from zonda.db.engine import read_txn, write_txn
from zonda.db.runs import run_tenant_state
from zonda.errors import AuthenticationError, ConflictError, NotFoundError
from zonda.services.access import require, require_superuser, require_tenant, visible
from zonda.services.audit import record

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from zonda.services.context import Services

SESSION_LIFETIME = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=5)
"""An API token's `last_used_at` is written at most this often (not on every request)."""

BAD_TOKEN = "the API token is not valid (revoked, expired or mistyped); create one with `zonda tokens create`"


def authenticate(svc: Services, value: str) -> Principal:
    """The principal a bearer token stands for; AuthenticationError if it stands for none."""
    if value.startswith(RUN_TOKEN_PREFIX + "_"):
        return _run_principal(svc, value)
    parsed = tokens.parse(value)
    if parsed is None:
        raise AuthenticationError(BAD_TOKEN)
    token_id, secret = parsed
    with read_txn(svc.engine) as conn:
        holder = db.token_holder(conn, token_id)
    if (
        holder is None
        or not tokens.secret_matches(secret, holder.token.secret_hash)
        or not _live(svc, holder.token)
    ):
        raise AuthenticationError(BAD_TOKEN)
    stored = holder.token
    principal = _user_principal(holder)
    if stored.last_used_at is None or svc.now() - stored.last_used_at > TOUCH_EVERY:
        with write_txn(svc.engine) as conn:
            db.touch_token(conn, token_id, svc.now())
    return principal


def login(svc: Services, user_id: str, password: str) -> NewTokenRecord:
    """A session token for a user's password; the same error for an unknown user and a bad password."""
    with read_txn(svc.engine) as conn:
        user = db.get_user(conn, user_id)
    if user is None or user.disabled or not verify_password(user.password_hash, password):
        raise AuthenticationError("unknown user or wrong password")
    with write_txn(svc.engine) as conn:
        session = _issue(conn, svc, user_id, "login", tokens.TokenKind.SESSION, SESSION_LIFETIME)
        record(conn, svc.as_caller(Principal(name=user_id), svc.origin), None, "auth.login", user_id, {})
    return session


def me(svc: Services) -> Principal:
    return svc.principal


def create_user(svc: Services, spec: UserCreate) -> UserRecord:
    require_superuser(svc, "create users")
    password = hash_password(spec.password) if spec.password else None
    try:
        with write_txn(svc.engine) as conn:
            db.create_user(conn, spec.user_id, password, spec.superuser, svc.now())
            record(conn, svc, None, "user.create", spec.user_id, {"superuser": spec.superuser})
    except IntegrityError:
        raise ConflictError(f"user '{spec.user_id}' already exists") from None
    return _require_user(svc, spec.user_id)


def list_users(svc: Services) -> list[UserRecord]:
    """Every user for superusers; the members of the caller's tenants for everyone else."""
    with read_txn(svc.engine) as conn:
        return db.list_users(conn, visible(svc))


def update_user(svc: Services, user_id: str, patch: UserPatch) -> UserRecord:
    """Users change their own password; superusers change anyone's, and enable or disable users."""
    if user_id != svc.principal.name or patch.disabled is not None:
        require_superuser(svc, "change another user")
    _require_user(svc, user_id)
    fields: dict[str, object] = {}
    if patch.password is not None:
        fields["password_hash"] = hash_password(patch.password)
    if patch.disabled is not None:
        fields["disabled"] = patch.disabled
    with write_txn(svc.engine) as conn:
        db.update_user(conn, user_id, **fields)
        record(conn, svc, None, "user.update", user_id, {"changed": sorted(fields)})
    return _require_user(svc, user_id)


def delete_user(svc: Services, user_id: str) -> None:
    require_superuser(svc, "delete users")
    with write_txn(svc.engine) as conn:
        if not db.delete_user(conn, user_id):
            raise NotFoundError(f"user '{user_id}' not found")
        record(conn, svc, None, "user.delete", user_id, {})


def create_token(svc: Services, spec: TokenCreate) -> NewTokenRecord:
    """An API token for the calling user (shown once)."""
    _require_user_caller(svc, "create API tokens")
    lifetime = timedelta(days=spec.expires_in_days) if spec.expires_in_days else None
    with write_txn(svc.engine) as conn:
        created = _issue(conn, svc, svc.principal.name, spec.name, tokens.TokenKind.API, lifetime)
        record(conn, svc, None, "token.create", created.token_id, {"name": spec.name})
    return created


def list_tokens(svc: Services) -> list[TokenRecord]:
    """The caller's API tokens; a superuser sees everyone's."""
    _require_user_caller(svc, "list API tokens")
    owner = None if svc.principal.superuser else svc.principal.name
    with read_txn(svc.engine) as conn:
        return db.list_tokens(conn, owner, tokens.TokenKind.API)


def revoke_token(svc: Services, token_id: str) -> None:
    """Revoke one of the caller's tokens (superusers: anyone's); NotFoundError for others'."""
    with write_txn(svc.engine) as conn:
        found = db.token_record(conn, token_id)
        mine = found is not None and (svc.principal.superuser or found.user_id == svc.principal.name)
        if not mine or not db.revoke_token(conn, token_id, svc.now()):
            raise NotFoundError(f"token '{token_id}' not found (or already revoked)")
        record(conn, svc, None, "token.revoke", token_id, {})


def list_members(svc: Services, tenant: str) -> list[MemberRecord]:
    require_tenant(svc, tenant, Action.READ, f"tenant '{tenant}'")
    with read_txn(svc.engine) as conn:
        return db.list_members(conn, frozenset({tenant}))


def set_member(svc: Services, tenant: str, user_id: str, spec: MemberSpec) -> MemberRecord:
    require_tenant(svc, tenant, Action.ADMINISTER, f"tenant '{tenant}'")
    _require_user(svc, user_id)
    with write_txn(svc.engine) as conn:
        db.set_member(conn, tenant, user_id, spec.role)
        record(conn, svc, tenant, "member.set", user_id, {"role": spec.role.value})
    return MemberRecord(tenant_id=tenant, user_id=user_id, role=spec.role)


def remove_member(svc: Services, tenant: str, user_id: str) -> None:
    require(svc, tenant, Action.ADMINISTER, f"tenant '{tenant}'")
    with write_txn(svc.engine) as conn:
        if not db.remove_member(conn, tenant, user_id):
            raise NotFoundError(f"user '{user_id}' is not a member of tenant '{tenant}'")
        record(conn, svc, tenant, "member.remove", user_id, {})


def issue_token(svc: Services, user_id: str, name: str) -> NewTokenRecord:
    """An API token for `user_id` without a login (the embedded server's local CLI token)."""
    with write_txn(svc.engine) as conn:
        return _issue(conn, svc, user_id, name, tokens.TokenKind.API, None)


def _issue(
    conn: Connection, svc: Services, user_id: str, name: str, kind: str, lifetime: timedelta | None
) -> NewTokenRecord:
    new = tokens.generate()
    now = svc.now()
    expires = now + lifetime if lifetime else None
    db.insert_token(
        conn,
        token_id=new.token_id,
        secret_hash=new.secret_hash,
        kind=kind,
        name=name,
        user_id=user_id,
        now=now,
        expires_at=expires,
    )
    return NewTokenRecord(
        token_id=new.token_id,
        name=name,
        kind=kind,
        user_id=user_id,
        created_at=now,
        expires_at=expires,
        token=new.value,
    )


def _live(svc: Services, stored: db.StoredToken) -> bool:
    if stored.revoked_at is not None:
        return False
    return stored.expires_at is None or stored.expires_at > svc.now()


def _user_principal(holder: db.TokenHolder) -> Principal:
    user_id = holder.token.user_id or ""
    if holder.user is None or holder.user.disabled:
        raise AuthenticationError(f"user '{user_id}' is disabled or was deleted; ask a platform admin")
    return Principal(name=user_id, superuser=holder.user.superuser, roles=holder.roles)


def _run_principal(svc: Services, value: str) -> Principal:
    """A run's tasks read their own tenant, while the run is active."""
    run_id = verify_run_token(secret_keys(svc.settings), value)
    if run_id is None:
        raise AuthenticationError(BAD_TOKEN)
    with read_txn(svc.engine) as conn:
        found = run_tenant_state(conn, run_id)
    if found is None or RunState(found[1]).finished:
        raise AuthenticationError(f"the token of run {run_id} expired with its run")
    return Principal(name=f"run:{run_id}", roles={found[0]: Role.VIEWER}, kind="run")


def _require_user_caller(svc: Services, what: str) -> None:
    if svc.principal.kind != "user":
        raise AuthenticationError(f"only a user may {what}; log in with `zonda login`")


def _require_user(svc: Services, user_id: str) -> UserRecord:
    with read_txn(svc.engine) as conn:
        user = db.user_record(conn, user_id)
    if user is None:
        raise NotFoundError(f"user '{user_id}' not found")
    return user
