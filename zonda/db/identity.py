"""Users, their roles per tenant, and API tokens (stored as hashes)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, bindparam, delete, insert, select, update

from zonda.api.schemas.identity import MemberRecord, TokenRecord, UserRecord
from zonda.core.permissions import Role
from zonda.db.dialect import upsert
from zonda.db.schema import api_tokens, memberships, users


@dataclass(frozen=True)
class StoredToken:
    """A token row as authentication needs it."""

    token_id: str
    secret_hash: str
    kind: str
    user_id: str | None
    tenant_id: str | None
    run_id: str | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class StoredUser:
    user_id: str
    password_hash: str | None
    superuser: bool
    disabled: bool


def create_user(
    conn: Connection, user_id: str, password_hash: str | None, superuser: bool, now: datetime
) -> None:
    conn.execute(
        insert(users).values(
            user_id=user_id, password_hash=password_hash, superuser=superuser, disabled=False, created_at=now
        )
    )


def get_user(conn: Connection, user_id: str) -> StoredUser | None:
    row = conn.execute(
        select(users.c.user_id, users.c.password_hash, users.c.superuser, users.c.disabled).where(
            users.c.user_id == user_id
        )
    ).first()
    return StoredUser(*row) if row else None


def update_user(conn: Connection, user_id: str, **fields: object) -> None:
    if fields:
        conn.execute(update(users).where(users.c.user_id == user_id).values(**fields))


def delete_user(conn: Connection, user_id: str) -> bool:
    return bool(conn.execute(delete(users).where(users.c.user_id == user_id)).rowcount)


def user_record(conn: Connection, user_id: str) -> UserRecord | None:
    """One user with all its roles."""
    row = conn.execute(_user_columns().where(users.c.user_id == user_id)).first()
    if row is None:
        return None
    return UserRecord.model_validate({**row._asdict(), "roles": roles_of(conn, user_id)})


def _user_columns() -> Select[Any]:
    return select(users.c.user_id, users.c.superuser, users.c.disabled, users.c.created_at)


def list_users(conn: Connection, tenants: frozenset[str] | None = None) -> list[UserRecord]:
    """Every user, or the members of `tenants` (with their roles there only)."""
    query = _user_columns()
    if tenants is not None:
        members = select(memberships.c.user_id).where(memberships.c.tenant_id.in_(sorted(tenants)))
        query = query.where(users.c.user_id.in_(members))
    records = {
        r.user_id: UserRecord.model_validate(r._asdict())
        for r in conn.execute(query.order_by(users.c.user_id))
    }
    for member in list_members(conn, tenants):
        if member.user_id in records:
            records[member.user_id].roles[member.tenant_id] = member.role
    return list(records.values())


def roles_of(conn: Connection, user_id: str) -> dict[str, Role]:
    """The user's role in each tenant it belongs to."""
    rows = conn.execute(
        select(memberships.c.tenant_id, memberships.c.role).where(memberships.c.user_id == user_id)
    )
    return {r.tenant_id: Role(r.role) for r in rows}


def list_members(conn: Connection, tenants: frozenset[str] | None = None) -> list[MemberRecord]:
    query = select(memberships).order_by(memberships.c.tenant_id, memberships.c.user_id)
    if tenants is not None:
        query = query.where(memberships.c.tenant_id.in_(sorted(tenants)))
    return [MemberRecord.model_validate(r._asdict()) for r in conn.execute(query)]


def set_member(conn: Connection, tenant_id: str, user_id: str, role: Role) -> None:
    upsert(
        conn,
        memberships,
        [{"tenant_id": tenant_id, "user_id": user_id, "role": role.value}],
        ["tenant_id", "user_id"],
    )


def remove_member(conn: Connection, tenant_id: str, user_id: str) -> bool:
    result = conn.execute(
        delete(memberships).where(memberships.c.tenant_id == tenant_id, memberships.c.user_id == user_id)
    )
    return bool(result.rowcount)


def insert_token(
    conn: Connection,
    *,
    token_id: str,
    secret_hash: str,
    kind: str,
    name: str,
    now: datetime,
    user_id: str | None = None,
    tenant_id: str | None = None,
    run_id: str | None = None,
    expires_at: datetime | None = None,
) -> None:
    conn.execute(
        insert(api_tokens).values(
            token_id=token_id,
            secret_hash=secret_hash,
            kind=kind,
            name=name,
            user_id=user_id,
            tenant_id=tenant_id,
            run_id=run_id,
            created_at=now,
            expires_at=expires_at,
        )
    )


@dataclass(frozen=True)
class TokenHolder:
    """A token with the user it stands for (None: no such user any more) and that user's roles."""

    token: StoredToken
    user: StoredUser | None
    roles: dict[str, Role]


_TOKEN_COLUMNS = tuple(api_tokens.c[field.name] for field in fields(StoredToken))
"""The columns of a `StoredToken`, in its fields' order."""

_TOKEN_HOLDER = (
    select(
        *_TOKEN_COLUMNS,
        users.c.user_id.label("holder"),
        users.c.password_hash,
        users.c.superuser,
        users.c.disabled,
        memberships.c.tenant_id.label("member_of"),
        memberships.c.role,
    )
    .select_from(
        api_tokens.outerjoin(users, users.c.user_id == api_tokens.c.user_id).outerjoin(
            memberships, memberships.c.user_id == users.c.user_id
        )
    )
    .where(api_tokens.c.token_id == bindparam("token_id"))
)
"""Built once: every API request runs it, and building it cost seven times what running it does."""


def token_holder(conn: Connection, token_id: str) -> TokenHolder | None:
    """The token, its user and the user's roles in one query: every API request authenticates."""
    rows = conn.execute(_TOKEN_HOLDER, {"token_id": token_id}).all()
    if not rows:
        return None
    first = rows[0]
    user = (
        StoredUser(first.holder, first.password_hash, first.superuser, first.disabled)
        if first.holder is not None
        else None
    )
    return TokenHolder(
        token=StoredToken(*first[: len(_TOKEN_COLUMNS)]),
        user=user,
        roles={r.member_of: Role(r.role) for r in rows if r.member_of is not None},
    )


def token_record(conn: Connection, token_id: str) -> TokenRecord | None:
    row = conn.execute(select(api_tokens).where(api_tokens.c.token_id == token_id)).first()
    return TokenRecord.model_validate(row._asdict()) if row else None


def list_tokens(conn: Connection, user_id: str | None, kind: str) -> list[TokenRecord]:
    """Tokens of `kind`, of one user or of all (user_id None), newest first."""
    query = select(api_tokens).where(api_tokens.c.kind == kind)
    if user_id is not None:
        query = query.where(api_tokens.c.user_id == user_id)
    rows = conn.execute(query.order_by(api_tokens.c.created_at.desc()))
    return [TokenRecord.model_validate(r._asdict()) for r in rows]


def revoke_token(conn: Connection, token_id: str, now: datetime) -> bool:
    result = conn.execute(
        update(api_tokens)
        .where(api_tokens.c.token_id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)


def revoke_run_tokens(conn: Connection, run_ids: list[str], now: datetime) -> None:
    """Revoke the tokens given to these runs' tasks (the runs have ended)."""
    if run_ids:
        conn.execute(
            update(api_tokens)
            .where(api_tokens.c.run_id.in_(run_ids), api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )


def touch_token(conn: Connection, token_id: str, now: datetime) -> None:
    conn.execute(update(api_tokens).where(api_tokens.c.token_id == token_id).values(last_used_at=now))
