"""Sealed task messages: each request a scheduler sends to a Celery worker, and each report a worker
sends back, is encrypted and authenticated with a key of the task's tenant (ADR 0015).

A broker is read by more than the scheduler and its intended worker: on Redis every worker
writes each message it takes into one shared `unacked` hash, which broker permissions cannot
split by tenant; broker admins, backups and management tools see message bodies too. A request
carries a tenant's secrets, its run's API token, params and small upstream outputs; a report, the
task's own small outputs. So both travel sealed (AES-256-GCM, which also authenticates them).
What a worker needs to report on a request it cannot open stays in clear: run, DAG, task, map
index, try and reply queue.

Keys are derived, never stored: a message key is HKDF-SHA256 of a server key
(`ZONDA_SECRET_KEYS`) for a scope, `tenant:<name>` when each tenant has its own queues and
workers (`ZONDA_TENANT_QUEUES`), else `shared`. A worker holds only its scope's keys
(`ZONDA_WORKER_KEYS`, printed by `zonda secrets worker-keys [--tenant T]` as `<scope>:<keys>`), so
a tenant's task code can neither open another tenant's messages nor make a request or a report
that passes for another tenant's. Schedulers seal with the newest server key and open with any;
workers open with any key they hold and seal with the newest, which lets keys rotate. A report a
scheduler passes on to another scheduler is sealed for the scope `schedulers`, which no worker
has a key of.
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
"""The scope of messages to and from workers that serve every tenant."""

SCHEDULERS = "schedulers"
"""The scope of reports one scheduler passes on to another (`CeleryExecutor.forward`)."""

REQUEST = b"request"
REPORT = b"report"
HEARTBEAT = b"heartbeat"
"""What a sealed message is, authenticated with it: a request can never pass for a report."""

_INFO = b"zonda task messages\x00"
_NONCE = 12


class SealError(ZondaError):
    """A sealed message that the keys at hand cannot open (another scope's key, or tampered with)."""


def tenant_scope(tenant: str) -> str:
    return f"tenant:{tenant}"


def scope_tenant(scope: str) -> str | None:
    """The tenant of a tenant's scope (None for `shared` or `schedulers`)."""
    kind, _, name = scope.partition(":")
    return name if kind == "tenant" else None


def scope_for(tenant: str | None, per_tenant: bool) -> str:
    """The scope of a message to a task of `tenant`: its own when tenants have their own workers."""
    return tenant_scope(tenant) if per_tenant and tenant else SHARED


@lru_cache(maxsize=4096)
def derive_key(secret_key: bytes, scope: str) -> bytes:
    """The 256-bit key of `scope`'s messages under one server key (a Fernet key)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO + scope.encode())
    return hkdf.derive(base64.urlsafe_b64decode(secret_key))


def worker_keys(secret_keys: list[bytes], scope: str) -> str:
    """`ZONDA_WORKER_KEYS` for the workers of `scope`: the scope, then one key per server key, newest first."""
    return f"{scope}:" + ",".join(
        base64.urlsafe_b64encode(derive_key(key, scope)).decode() for key in secret_keys
    )


class Sealer:
    """The schedulers' side: seals requests with the newest server key's key of their scope, and
    opens reports sealed with any server key's."""

    def __init__(self, secret_keys: list[bytes], per_tenant: bool) -> None:
        if not secret_keys:
            raise ConfigError("sealing task messages needs a server key (ZONDA_SECRET_KEYS)")
        self.per_tenant = per_tenant
        self._keys = list(secret_keys)
        self._ciphers: dict[str, list[AESGCM]] = {}

    def scope(self, tenant: str | None) -> str:
        return scope_for(tenant, self.per_tenant)

    def seal(self, scope: str, kind: bytes, plaintext: bytes) -> str:
        return _seal(self._of(scope)[0], kind, scope, plaintext)

    def open(self, scope: str, kind: bytes, token: str) -> bytes:
        """SealError if no server key's key of `scope` opens it (a forged or altered message)."""
        opened = _open(self._of(scope), kind, scope, token)
        if opened is None:
            raise SealError(
                f"no server key opens this message of scope '{scope}': forged, altered, or sealed "
                "with a key no longer in ZONDA_SECRET_KEYS"
            )
        return opened

    def _of(self, scope: str) -> list[AESGCM]:
        ciphers = self._ciphers.get(scope)
        if ciphers is None:
            ciphers = self._ciphers[scope] = [AESGCM(derive_key(key, scope)) for key in self._keys]
        return ciphers


class WorkerKeys:
    """The workers' side: opens requests sealed with any key it was given, seals its reports with
    the newest, for its own scope."""

    def __init__(self, value: str) -> None:
        if not value.strip():
            raise ConfigError(
                "zonda worker needs ZONDA_WORKER_KEYS to open its task messages: run `zonda secrets worker-keys` "
                "(or `zonda secrets worker-keys --tenant T` for a worker started with --tenant T) where "
                "ZONDA_SECRET_KEYS is set, and give the worker what it prints"
            )
        scope, _, keys = value.strip().rpartition(":")
        parsed = [k.strip() for k in keys.split(",") if k.strip()]
        if not scope or not parsed:
            raise ConfigError(_MALFORMED)
        self.scope = scope
        self._ciphers = [AESGCM(_worker_key(k)) for k in parsed]

    def open(self, scope: str, kind: bytes, token: str) -> bytes:
        if scope != self.scope:
            raise SealError(
                f"this worker holds the keys of scope '{self.scope}', not those of this message's scope "
                f"'{scope}': give it the keys `zonda secrets worker-keys{_tenant_option(scope)}` prints "
                "(ZONDA_WORKER_KEYS), and check that its queues are that scope's"
            )
        opened = _open(self._ciphers, kind, scope, token)
        if opened is None:
            raise SealError(
                f"none of this worker's keys of scope '{scope}' opens this message: they come from other server "
                f"keys than the schedulers' (run `zonda secrets worker-keys{_tenant_option(scope)}` again where "
                "ZONDA_SECRET_KEYS is set), or the message was altered on the way"
            )
        return opened

    def seal(self, kind: bytes, plaintext: bytes) -> tuple[str, str]:
        """(scope, token): `plaintext` sealed for this worker's scope."""
        return self.scope, _seal(self._ciphers[0], kind, self.scope, plaintext)


_MALFORMED = "ZONDA_WORKER_KEYS must be what `zonda secrets worker-keys` prints: <scope>:<key>[,<key>...]"


def _seal(cipher: AESGCM, kind: bytes, scope: str, plaintext: bytes) -> str:
    """AES-256-GCM with a random nonce; what the message is and its scope are authenticated with it."""
    nonce = os.urandom(_NONCE)
    return base64.b64encode(
        nonce + cipher.encrypt(nonce, plaintext, kind + b"\x00" + scope.encode())
    ).decode()


def _open(ciphers: list[AESGCM], kind: bytes, scope: str, token: str) -> bytes | None:
    try:
        raw = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        return None
    for cipher in ciphers:
        try:
            return cipher.decrypt(raw[:_NONCE], raw[_NONCE:], kind + b"\x00" + scope.encode())
        except (InvalidTag, ValueError):
            continue
    return None


def _worker_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        key = b""
    if len(key) != 32:
        raise ConfigError(_MALFORMED)
    return key


def _tenant_option(scope: str) -> str:
    tenant = scope_tenant(scope)
    return f" --tenant {tenant}" if tenant else ""
