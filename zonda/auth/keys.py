"""The server's secret keys: Fernet keys that encrypt tenant secrets at rest and sign run tokens.

`ZONDA_SECRET_KEYS` holds one or more Fernet keys, comma-separated, newest first: the first
encrypts, every one decrypts and verifies, so a key is rotated by putting a new key in front,
re-encrypting (`zonda secrets rotate`), then dropping the old key. An embedded installation
without the setting generates one key into `ZONDA_HOME/secret.key` (mode 0600) on first use.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, MultiFernet

from zonda.errors import ConfigError

if TYPE_CHECKING:
    from zonda.settings import Settings

RUN_TOKEN_PREFIX = "zondarun"


def secret_keys(settings: Settings) -> list[bytes]:
    """The configured keys, newest first (generated into ZONDA_HOME when none is configured)."""
    if settings.secret_keys:
        keys = [k.strip().encode() for k in settings.secret_keys.split(",") if k.strip()]
    else:
        keys = [_home_key(settings.home / "secret.key")]
    for key in keys:
        _check(key)
    return keys


def fernet(settings: Settings) -> MultiFernet:
    """Encrypts with the newest key, decrypts with any."""
    return MultiFernet([Fernet(k) for k in secret_keys(settings)])


def run_token(keys: list[bytes], run_id: str) -> str:
    """The credential a run's tasks get: `zondarun_<run id>_<signature>` (valid while the run is active)."""
    return f"{RUN_TOKEN_PREFIX}_{run_id}_{_sign(keys[0], run_id)}"


def verify_run_token(keys: list[bytes], value: str) -> str | None:
    """The run id a run token was issued for, if any key signed it."""
    parts = value.strip().split("_")
    if len(parts) != 3 or parts[0] != RUN_TOKEN_PREFIX:
        return None
    run_id, signature = parts[1], parts[2]
    if any(hmac.compare_digest(_sign(k, run_id), signature) for k in keys):
        return run_id
    return None


def _sign(key: bytes, run_id: str) -> str:
    derived = hmac.new(key, b"zonda run token", hashlib.sha256).digest()
    return hmac.new(derived, run_id.encode(), hashlib.sha256).hexdigest()


def _home_key(path: Path) -> bytes:
    """The embedded installation's key, created on first use, readable by its owner only.

    The key is written to a temporary file and linked into place, so processes starting together
    agree on one key and none reads a half-written file.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret.key.")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(Fernet.generate_key())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    return path.read_bytes().strip()


def _check(key: bytes) -> None:
    try:
        Fernet(key)
    except ValueError as exc:
        raise ConfigError(
            "ZONDA_SECRET_KEYS must be Fernet keys (32 url-safe base64-encoded bytes), comma-separated; "
            "make one with `zonda secrets new-key`"
        ) from exc
