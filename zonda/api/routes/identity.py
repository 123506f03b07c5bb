"""Login, the caller, users, API tokens and tenant members."""

from __future__ import annotations

from fastapi import APIRouter, Response

from zonda.api.errors import ERROR_RESPONSES
from zonda.api.routes.deps import SESSION_COOKIE, PublicServicesDep, ServicesDep
from zonda.api.schemas.identity import (
    LoginRequest,
    Me,
    MemberRecord,
    MemberSpec,
    NewTokenRecord,
    TokenCreate,
    TokenRecord,
    UserCreate,
    UserPatch,
    UserRecord,
)
from zonda.services import identity

router = APIRouter(prefix="/api/v1", tags=["identity"], responses=ERROR_RESPONSES)


@router.post("/auth/login")
def login(body: LoginRequest, svc: PublicServicesDep, response: Response) -> NewTokenRecord:
    """Exchange a password for a session token (also set as the UI's session cookie)."""
    session = identity.login(svc, body.user_id, body.password)
    response.set_cookie(SESSION_COOKIE, session.token, httponly=True, samesite="strict")
    return session


@router.get("/auth/me")
def me(svc: ServicesDep) -> Me:
    """Who the credentials belong to, and their role in each tenant."""
    p = identity.me(svc)
    return Me(user_id=p.name, kind=p.kind, superuser=p.superuser, roles=dict(p.roles))


@router.post("/users", status_code=201)
def create_user(body: UserCreate, svc: ServicesDep) -> UserRecord:
    """Create a user (superusers)."""
    return identity.create_user(svc, body)


@router.get("/users")
def list_users(svc: ServicesDep) -> list[UserRecord]:
    """Users: all of them for superusers, the members of the caller's tenants for others."""
    return identity.list_users(svc)


@router.patch("/users/{user_id}")
def update_user(user_id: str, body: UserPatch, svc: ServicesDep) -> UserRecord:
    """Change a password (your own; superusers: anyone's) or disable a user (superusers)."""
    return identity.update_user(svc, user_id, body)


@router.delete("/users/{user_id}", status_code=204)
def delete_user(user_id: str, svc: ServicesDep) -> None:
    """Delete a user (superusers)."""
    identity.delete_user(svc, user_id)


@router.post("/tokens", status_code=201)
def create_token(body: TokenCreate, svc: ServicesDep) -> NewTokenRecord:
    """Create an API token for yourself; its value is in this response only."""
    return identity.create_token(svc, body)


@router.get("/tokens")
def list_tokens(svc: ServicesDep) -> list[TokenRecord]:
    """Your API tokens (superusers: everyone's), without their values."""
    return identity.list_tokens(svc)


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: str, svc: ServicesDep) -> None:
    """Revoke an API token at once."""
    identity.revoke_token(svc, token_id)


@router.get("/tenants/{tenant_id}/members")
def list_members(tenant_id: str, svc: ServicesDep) -> list[MemberRecord]:
    """The tenant's users and their roles."""
    return identity.list_members(svc, tenant_id)


@router.put("/tenants/{tenant_id}/members/{user_id}")
def set_member(tenant_id: str, user_id: str, body: MemberSpec, svc: ServicesDep) -> MemberRecord:
    """Give a user a role in the tenant (tenant admins)."""
    return identity.set_member(svc, tenant_id, user_id, body)


@router.delete("/tenants/{tenant_id}/members/{user_id}", status_code=204)
def remove_member(tenant_id: str, user_id: str, svc: ServicesDep) -> None:
    """Take a user out of the tenant (tenant admins)."""
    identity.remove_member(svc, tenant_id, user_id)
