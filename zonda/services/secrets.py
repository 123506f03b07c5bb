"""Tenant secrets and connections: set and deleted by the tenant's admins, listed by its members.

Values are encrypted with the server's Fernet keys (`zonda.auth.keys`) before they reach the DB
and are never returned: only the scheduler decrypts them, to hand them to the tenant's own tasks.
Every change is audited (without the value) and wakes the schedulers to refresh their copies.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from cryptography.fernet import InvalidToken
from sqlalchemy.exc import IntegrityError

from zonda.api.schemas.secrets import SECRET_NAME, SecretRecord, SecretWrite
from zonda.auth.keys import fernet
from zonda.core.permissions import Action
from zonda.db import secrets as db
from zonda.db.engine import read_txn, write_txn
from zonda.errors import ConfigError, ConflictError, NotFoundError, ParamsError
from zonda.services.access import require_superuser, require_tenant
from zonda.services.audit import record

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from zonda.services.context import Services


def list_secrets(svc: Services, tenant: str) -> list[SecretRecord]:
    """The tenant's secrets and connections, without values (any member may list them)."""
    require_tenant(svc, tenant, Action.READ, f"the secrets of tenant '{tenant}'")
    with read_txn(svc.engine) as conn:
        return db.list_secrets(conn, tenant)


def get_secret(svc: Services, tenant: str, name: str) -> SecretRecord:
    """One secret, without its value."""
    require_tenant(svc, tenant, Action.READ, f"the secrets of tenant '{tenant}'")
    with read_txn(svc.engine) as conn:
        found = db.get_secret(conn, tenant, name)
    if found is None:
        raise NotFoundError(
            f"secret '{name}' not found in tenant '{tenant}'; `zonda secrets list --tenant {tenant}` lists them"
        )
    return found


def set_secret(svc: Services, tenant: str, name: str, body: SecretWrite) -> SecretRecord:
    """Create or replace a secret (tenant admins); the value is encrypted before it is stored."""
    require_tenant(svc, tenant, Action.ADMINISTER, f"the secrets of tenant '{tenant}'")
    _check_name(name)
    ciphertext = fernet(svc.settings).encrypt(body.value.encode()).decode()
    try:
        with write_txn(svc.engine) as conn:
            _check_no_case_twin(conn, tenant, name)
            created = db.put_secret(
                conn,
                tenant,
                name,
                kind=body.kind.value,
                ciphertext=ciphertext,
                description=body.description,
                now=svc.now(),
            )
            details = {"kind": body.kind.value, "created": created}
            record(conn, svc, tenant, "secret.set", name, details)
    except IntegrityError:
        raise ConflictError(
            f"secret '{name}' was created by another request at the same time; retry"
        ) from None
    svc.waker.wake("secrets")
    return get_secret(svc, tenant, name)


def delete_secret(svc: Services, tenant: str, name: str) -> None:
    """Remove a secret (tenant admins); tasks started afterwards no longer get it."""
    require_tenant(svc, tenant, Action.ADMINISTER, f"the secrets of tenant '{tenant}'")
    with write_txn(svc.engine) as conn:
        if not db.delete_secret(conn, tenant, name):
            raise NotFoundError(f"secret '{name}' not found in tenant '{tenant}'")
        record(conn, svc, tenant, "secret.delete", name, {})
    svc.waker.wake("secrets")


def rotate_secrets(svc: Services) -> int:
    """Re-encrypt every stored secret with the newest key (superusers); returns how many.

    All or nothing: one ciphertext that no configured key opens stops the rotation with a
    ConfigError naming it, and nothing is changed.
    """
    require_superuser(svc, "re-encrypt the stored secrets")
    keys = fernet(svc.settings)
    with write_txn(svc.engine) as conn:
        stored = db.sealed(conn)
        per_tenant: dict[str, int] = {}
        for item in stored:
            try:
                fresh = keys.rotate(item.ciphertext.encode()).decode()
            except InvalidToken:
                raise ConfigError(
                    f"secret '{item.name}' of tenant '{item.tenant_id}' was encrypted with a key that is not "
                    "in ZONDA_SECRET_KEYS; add the old key back after the new one and rotate again"
                ) from None
            db.reseal(conn, replace(item, ciphertext=fresh))
            per_tenant[item.tenant_id] = per_tenant.get(item.tenant_id, 0) + 1
        for tenant, count in sorted(per_tenant.items()):
            record(conn, svc, tenant, "secret.rotate", tenant, {"secrets": count})
    svc.waker.wake("secrets")
    return len(stored)


def _check_name(name: str) -> None:
    if not re.fullmatch(SECRET_NAME, name):
        raise ParamsError(
            f"secret name {name!r} is not valid: use letters, digits and underscores (up to 128), "
            "not starting with a digit, e.g. warehouse_password",
            [{"param": "name", "message": f"must match {SECRET_NAME}"}],
        )


def _check_no_case_twin(conn: Connection, tenant: str, name: str) -> None:
    """Refuse `name` if another secret differs from it only in case: both would be ZONDA_SECRET_<NAME>."""
    twins = [n for n in db.names_like(conn, tenant, name) if n != name]
    if twins:
        raise ConflictError(
            f"tenant '{tenant}' already has secret '{twins[0]}', which differs from '{name}' only in case; "
            f"both would be ZONDA_SECRET_{name.upper()} in bash tasks: reuse '{twins[0]}' or pick another name"
        )
