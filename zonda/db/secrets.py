"""Tenant secrets as stored: name, kind and description in clear, the value only as Fernet ciphertext.

These functions never see a plain value; encrypting and decrypting is the caller's (the service
layer on the way in, the scheduler on the way out to a task).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from zonda.api.schemas.secrets import SecretRecord
from zonda.db.schema import secrets

_RECORD_COLUMNS = (
    secrets.c.tenant_id,
    secrets.c.name,
    secrets.c.kind,
    secrets.c.description,
    secrets.c.created_at,
    secrets.c.updated_at,
)


@dataclass(frozen=True)
class Sealed:
    """One stored secret's ciphertext, for the scheduler (decrypt) and for key rotation (re-encrypt)."""

    tenant_id: str
    name: str
    ciphertext: str


def list_secrets(conn: Connection, tenant_id: str) -> list[SecretRecord]:
    """A tenant's secrets, by name, without their values."""
    query = select(*_RECORD_COLUMNS).where(secrets.c.tenant_id == tenant_id).order_by(secrets.c.name)
    return [SecretRecord.model_validate(r._asdict()) for r in conn.execute(query)]


def get_secret(conn: Connection, tenant_id: str, name: str) -> SecretRecord | None:
    """One secret, without its value."""
    query = select(*_RECORD_COLUMNS).where(secrets.c.tenant_id == tenant_id, secrets.c.name == name)
    row = conn.execute(query).first()
    return SecretRecord.model_validate(row._asdict()) if row else None


def names_like(conn: Connection, tenant_id: str, name: str) -> list[str]:
    """The tenant's secret names equal to `name` ignoring case (they would share one env variable)."""
    query = select(secrets.c.name).where(secrets.c.tenant_id == tenant_id)
    return [n for (n,) in conn.execute(query) if n.upper() == name.upper()]


def put_secret(
    conn: Connection,
    tenant_id: str,
    name: str,
    *,
    kind: str,
    ciphertext: str,
    description: str,
    now: datetime,
) -> bool:
    """Create or replace a secret; True if it was created."""
    changed = conn.execute(
        update(secrets)
        .where(secrets.c.tenant_id == tenant_id, secrets.c.name == name)
        .values(kind=kind, ciphertext=ciphertext, description=description, updated_at=now)
    ).rowcount
    if changed:
        return False
    conn.execute(
        insert(secrets).values(
            tenant_id=tenant_id,
            name=name,
            kind=kind,
            ciphertext=ciphertext,
            description=description,
            created_at=now,
            updated_at=now,
        )
    )
    return True


def delete_secret(conn: Connection, tenant_id: str, name: str) -> bool:
    """Remove a secret; False if there was none."""
    query = delete(secrets).where(secrets.c.tenant_id == tenant_id, secrets.c.name == name)
    return bool(conn.execute(query).rowcount)


def sealed(conn: Connection, tenant_id: str | None = None) -> list[Sealed]:
    """The ciphertext of every stored secret (of one tenant if given)."""
    query = select(secrets.c.tenant_id, secrets.c.name, secrets.c.ciphertext)
    if tenant_id is not None:
        query = query.where(secrets.c.tenant_id == tenant_id)
    return [Sealed(r.tenant_id, r.name, r.ciphertext) for r in conn.execute(query)]


def reseal(conn: Connection, item: Sealed) -> None:
    """Store new ciphertext for the same value (key rotation: the update time does not change)."""
    conn.execute(
        update(secrets)
        .where(secrets.c.tenant_id == item.tenant_id, secrets.c.name == item.name)
        .values(ciphertext=item.ciphertext)
    )
