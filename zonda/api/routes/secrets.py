"""A tenant's secrets and connections: written by its admins, listed by its members, never read back."""

from __future__ import annotations

from fastapi import APIRouter

from zonda.api.errors import ERROR_RESPONSES
from zonda.api.routes.deps import ServicesDep
from zonda.api.schemas.secrets import SecretRecord, SecretWrite
from zonda.services import secrets

router = APIRouter(prefix="/api/v1/tenants/{tenant_id}/secrets", tags=["secrets"], responses=ERROR_RESPONSES)


@router.get("")
def list_secrets(tenant_id: str, svc: ServicesDep) -> list[SecretRecord]:
    """The tenant's secrets and connections: names, kinds and descriptions, never values."""
    return secrets.list_secrets(svc, tenant_id)


@router.get("/{name}")
def get_secret(tenant_id: str, name: str, svc: ServicesDep) -> SecretRecord:
    """One secret's name, kind and description (its value is never returned)."""
    return secrets.get_secret(svc, tenant_id, name)


@router.put("/{name}")
def set_secret(tenant_id: str, name: str, body: SecretWrite, svc: ServicesDep) -> SecretRecord:
    """Create or replace a secret (tenant admins); the value is stored encrypted."""
    return secrets.set_secret(svc, tenant_id, name, body)


@router.delete("/{name}", status_code=204)
def delete_secret(tenant_id: str, name: str, svc: ServicesDep) -> None:
    """Remove a secret (tenant admins)."""
    secrets.delete_secret(svc, tenant_id, name)
