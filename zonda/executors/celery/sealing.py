"""Sealed task messages: the body of each request a scheduler sends to a Celery worker is encrypted
and authenticated with a key of the task's tenant (ADR 0015).

A broker is read by more than the scheduler and its intended worker: on Redis every worker
writes each message it takes into one shared `unacked` hash, which broker permissions cannot
split by tenant; broker admins, backups and management tools see message bodies too. The body
carries a tenant's secrets, its run's API token, params and small upstream outputs, so it
travels sealed (AES-256-GCM, which also authenticates it). What a worker needs to report on an
attempt it cannot open stays in clear: run, DAG, task, map index, try and reply queue.

Keys are derived, never stored: a message key is HKDF-SHA256 of a server key
(`ZONDA_SECRET_KEYS`) for a scope, `tenant:<name>` when each tenant has its own queues and
workers (`ZONDA_TENANT_QUEUES`), else `shared`. A worker holds only the keys of its scope
(`ZONDA_WORKER_KEYS`, printed by `zonda secrets worker-keys [--tenant T]`), so a tenant's task
code cannot open another tenant's messages, nor make a request that another tenant's worker
runs. Schedulers seal with the newest server key; workers open with any key they hold, which
lets keys rotate.
"""

from __future__ import annotations

import base64
import binascii
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from zonda.errors import ConfigError, ZondaError

SHARED = "shared"
"""The scope of messages to workers that serve every tenant."""

_INFO = b"zonda task messages\x00"
_NONCE = 12


class SealError(ZondaError):
    """A sealed message that the keys at hand cannot open (another scope's key, or tampered with)."""


def tenant_scope(tenant: str) -> str:
    return f"tenant:{tenant}"


def scope_for(tenant: str | None, per_tenant: bool) -> str:
    """The scope of a message to a task of `tenant`: its own when tenants have their own workers."""
    return tenant_scope(tenant) if per_tenant and tenant else SHARED


@lru_cache(maxsize=4096)
def derive_key(secret_key: bytes, scope: str) -> bytes:
    """The 256-bit key of `scope`'s messages under one server key (a Fernet key)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO + scope.encode())
    return hkdf.derive(base64.urlsafe_b64decode(secret_key))


def worker_keys(secret_keys: list[bytes], scope: str) -> str:
    """`ZONDA_WORKER_KEYS` for the workers of `scope`: one key per server key, newest first."""
    return ",".join(base64.urlsafe_b64encode(derive_key(key, scope)).decode() for key in secret_keys)


class Sealer:
    """The schedulers' side: seals each message with the newest server key's key of its scope."""

    def __init__(self, secret_keys: list[bytes], per_tenant: bool) -> None:
        if not secret_keys:
            raise ConfigError("sealing task messages needs a server key (ZONDA_SECRET_KEYS)")
        self.per_tenant = per_tenant
        self._primary = secret_keys[0]
        self._ciphers: dict[str, AESGCM] = {}

    def scope(self, tenant: str | None) -> str:
        return scope_for(tenant, self.per_tenant)

    def seal(self, scope: str, plaintext: bytes) -> str:
        """AES-256-GCM with a random nonce; the scope is authenticated with it."""
        cipher = self._ciphers.get(scope)
        if cipher is None:
            cipher = self._ciphers[scope] = AESGCM(derive_key(self._primary, scope))
        nonce = os.urandom(_NONCE)
        return base64.b64encode(nonce + cipher.encrypt(nonce, plaintext, scope.encode())).decode("ascii")


class Opener:
    """The workers' side: opens messages sealed with any of the keys it was given."""

    def __init__(self, keys: str) -> None:
        parsed = [k.strip() for k in keys.split(",") if k.strip()]
        if not parsed:
            raise ConfigError(
                "zonda worker needs ZONDA_WORKER_KEYS to open its task messages: run `zonda secrets worker-keys` "
                "(or `zonda secrets worker-keys --tenant T` for a worker started with --tenant T) where "
                "ZONDA_SECRET_KEYS is set, and give the worker what it prints"
            )
        self._ciphers = [AESGCM(_worker_key(k)) for k in parsed]

    def open(self, token: str, scope: str) -> bytes:
        try:
            raw = base64.b64decode(token, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        nonce, sealed = raw[:_NONCE], raw[_NONCE:]
        for cipher in self._ciphers:
            try:
                return cipher.decrypt(nonce, sealed, scope.encode())
            except (InvalidTag, ValueError):
                continue
        raise SealError(
            f"this worker holds no key for messages of scope '{scope}': give it the keys "
            f"`zonda secrets worker-keys{_tenant_option(scope)}` prints (ZONDA_WORKER_KEYS), and check "
            "that its queues are that scope's"
        )


def _worker_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        key = b""
    if len(key) != 32:
        raise ConfigError(
            "ZONDA_WORKER_KEYS must be the keys `zonda secrets worker-keys` prints, comma-separated"
        )
    return key


def _tenant_option(scope: str) -> str:
    kind, _, name = scope.partition(":")
    return f" --tenant {name}" if kind == "tenant" else ""
