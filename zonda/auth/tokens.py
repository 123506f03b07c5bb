"""API tokens: `zonda_<id>_<secret>`. The id finds the row; only a SHA-256 hash of the secret is stored.

A token's secret has 192 random bits, so a fast hash is enough (a password hash would add tens of
milliseconds to every API call without adding safety). Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

PREFIX = "zonda"


class TokenKind(StrEnum):
    API = "api"
    """Created by a user for scripts and the CLI; lives until revoked or it expires."""
    SESSION = "session"
    """Created by a password login (UI, `zonda login`); expires."""
    RUN = "run"
    """Given to one run's tasks: reads its own tenant only; revoked when the run ends."""


@dataclass(frozen=True)
class NewToken:
    """A freshly generated token: `value` is shown once; `token_id` and `secret_hash` are stored."""

    token_id: str
    value: str
    secret_hash: str


def generate() -> NewToken:
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(24)
    return NewToken(token_id, f"{PREFIX}_{token_id}_{secret}", hash_secret(secret))


def parse(value: str) -> tuple[str, str] | None:
    """(token id, secret) of a well-formed token value, else None."""
    parts = value.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
