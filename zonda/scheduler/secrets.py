"""The scheduler's copy of each tenant's secrets, decrypted, for the task requests it builds.

It is read from the DB whenever the scheduler polls the topic "secrets": at start, after the API
wakes it because a secret changed, and at every safety-net poll. A ciphertext seen before is not
decrypted again. A task request gets the secrets of its run's tenant and no other (`of`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cryptography.fernet import InvalidToken, MultiFernet

from zonda.auth.keys import fernet
from zonda.db.secrets import Sealed, sealed

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from zonda.settings import Settings

log = logging.getLogger(__name__)


class TenantSecrets:
    """Decrypted secrets by tenant, then by name; `None` for every tenant until the first `refresh`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._keys: MultiFernet | None = None
        self._by_tenant: dict[str, dict[str, str]] | None = None
        self._plain: dict[str, str] = {}
        self._unreadable: set[str] = set()

    def of(self, tenant: str) -> Mapping[str, str] | None:
        """The secrets of `tenant` by name; None if they have not been read yet (a task must wait)."""
        if self._by_tenant is None:
            return None
        return self._by_tenant.get(tenant, {})

    def refresh(self, conn: Connection) -> None:
        """Read every tenant's secrets again: new and changed ones are decrypted, deleted ones dropped."""
        plain: dict[str, str] = {}
        by_tenant: dict[str, dict[str, str]] = {}
        for item in sealed(conn):
            value = self._plain.get(item.ciphertext)
            if value is None:
                value = self._decrypt(item)
            if value is not None:
                plain[item.ciphertext] = value
                by_tenant.setdefault(item.tenant_id, {})[item.name] = value
        self._plain, self._by_tenant = plain, by_tenant

    def _decrypt(self, item: Sealed) -> str | None:
        """The value, or None (logged once) when no configured key opens it: the task then cannot read it."""
        if self._keys is None:
            self._keys = fernet(self._settings)
        try:
            return self._keys.decrypt(item.ciphertext.encode()).decode()
        except InvalidToken:
            if item.ciphertext not in self._unreadable:
                self._unreadable.add(item.ciphertext)
                log.error(
                    "secret '%s' of tenant '%s' was encrypted with a key that is not in ZONDA_SECRET_KEYS; "
                    "tasks cannot read it until that key is configured again (then run `zonda secrets rotate`) "
                    "or the secret is set again",
                    item.name,
                    item.tenant_id,
                )
            return None
