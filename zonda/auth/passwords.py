"""Passwords are stored as argon2id hashes; verification rehashes when the parameters change."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

MIN_LENGTH = 8


def hash_password(password: str) -> str:
    """The argon2id hash of `password`, for the users table."""
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether `password` matches `stored_hash` (a user without a password never matches)."""
    if not stored_hash:
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    """A random password for a bootstrapped admin (printed once)."""
    return secrets.token_urlsafe(15)
