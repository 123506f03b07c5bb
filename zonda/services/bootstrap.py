"""First start: the `default` tenant for the configured DAG folder, and a first superuser.

A server with no users creates `admin` (a superuser, member of `default`) with the password in
`ZONDA_ADMIN_PASSWORD`, or a generated one that is printed once. It also writes an API token for
`admin` to `ZONDA_HOME/token` (mode 0600), which the CLI on the same machine uses, so `zonda up`
followed by `zonda trigger ...` works without a login. Whoever can read that file can read the
embedded SQLite DB beside it as well.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError

from zonda.auth.passwords import generate_password, hash_password
from zonda.core.ids import DEFAULT_TENANT
from zonda.core.permissions import Role
from zonda.db import identity, tenants
from zonda.db.engine import write_txn
from zonda.services.identity import issue_token

if TYPE_CHECKING:
    from zonda.services.context import Services

log = logging.getLogger(__name__)

ADMIN = "admin"


@dataclass(frozen=True)
class Bootstrapped:
    """What the first start created: the admin's generated password (None if it was configured)."""

    admin_created: bool = False
    generated_password: str | None = None


def ensure_default_tenant(svc: Services) -> None:
    """Make `default` exist and process the configured DAG folder (the examples unless one is set)."""
    folder = str(svc.settings.resolved_dags_folder)
    try:
        with write_txn(svc.engine) as conn:
            found = tenants.get_tenant(conn, DEFAULT_TENANT)
            if found is None:
                fields = {"display_name": "Default", "dag_folders": [folder]}
                tenants.create_tenant(conn, DEFAULT_TENANT, fields, svc.now())
            elif svc.settings.dags_folder is not None and found.dag_folders != [folder]:
                tenants.update_tenant(conn, DEFAULT_TENANT, {"dag_folders": [folder]})
    except IntegrityError:
        log.info("another process created the tenant %s first", DEFAULT_TENANT)


def ensure_admin(svc: Services) -> Bootstrapped:
    """Create the first superuser if there is no user at all; write the local CLI token for it.

    Processes starting together race for it: the one whose insert loses leaves it to the winner.
    """
    password = svc.settings.admin_password or generate_password()
    try:
        with write_txn(svc.engine) as conn:
            if identity.list_users(conn):
                return Bootstrapped()
            identity.create_user(conn, ADMIN, hash_password(password), True, svc.now())
            if tenants.get_tenant(conn, DEFAULT_TENANT) is not None:
                identity.set_member(conn, DEFAULT_TENANT, ADMIN, Role.ADMIN)
    except IntegrityError:
        log.info("another process created the first superuser first")
        return Bootstrapped()
    token = issue_token(svc, ADMIN, "local CLI (written by the first start)")
    write_token_file(svc.settings.home / "token", token.token)
    return Bootstrapped(True, None if svc.settings.admin_password else password)


def write_token_file(path: os.PathLike[str], token: str) -> None:
    """Save a token readable by its owner only (the CLI reads it when ZONDA_TOKEN is not set)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
