"""Credential primitives: password hashes, API token format and hashing, signed run tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from zonda.auth import tokens
from zonda.auth.keys import run_token, secret_keys, verify_run_token
from zonda.auth.passwords import hash_password, verify_password
from zonda.errors import ConfigError
from zonda.settings import Settings


def test_passwords_verify_only_against_their_hash() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse")
    assert not verify_password(stored, "wrong")
    assert not verify_password(None, "anything")
    assert not verify_password("not-a-hash", "anything")


def test_api_tokens_parse_and_match_their_stored_hash() -> None:
    new = tokens.generate()
    parsed = tokens.parse(new.value)
    assert parsed is not None and parsed[0] == new.token_id
    assert tokens.secret_matches(parsed[1], new.secret_hash)
    assert not tokens.secret_matches(parsed[1] + "x", new.secret_hash)
    assert parsed[1] not in new.secret_hash
    for bad in ("", "zonda", "zonda__x", "other_id_secret", "zonda_id_"):
        assert tokens.parse(bad) is None


def test_run_tokens_verify_with_any_configured_key() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    issued = run_token([old], "run1")
    assert verify_run_token([new, old], issued) == "run1", "still valid while the old key is configured"
    assert verify_run_token([new], issued) is None
    assert verify_run_token([old], issued.replace("run1", "run2")) is None
    assert verify_run_token([old], "zonda_x_y") is None


def test_keys_come_from_settings_or_are_generated_once_into_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    first = secret_keys(settings)
    assert secret_keys(settings) == first
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    key = Fernet.generate_key().decode()
    assert secret_keys(Settings(home=tmp_path, secret_keys=f"{key}, {first[0].decode()}")) == [
        key.encode(),
        first[0],
    ]
    with pytest.raises(ConfigError, match="Fernet keys"):
        secret_keys(Settings(home=tmp_path, secret_keys="not-a-key"))
