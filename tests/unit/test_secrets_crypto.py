"""Secret values at rest: Fernet keys, rotation from one key to the next, and what a connection may hold."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken
from pydantic import ValidationError

from zonda.api.schemas.secrets import SecretKind, SecretWrite
from zonda.auth.keys import fernet, secret_keys
from zonda.errors import ConfigError
from zonda.settings import Settings

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()


def keys(tmp_path: Path, *values: str) -> Settings:
    return Settings(home=tmp_path, secret_keys=",".join(values))


def test_rotation_moves_every_value_to_the_new_key(tmp_path: Path) -> None:
    stored = fernet(keys(tmp_path, KEY_A)).encrypt(b"hunter2-password")
    both = fernet(keys(tmp_path, KEY_B, KEY_A))
    assert both.decrypt(stored) == b"hunter2-password"  # old ciphertext still reads during rotation
    rotated = both.rotate(stored)
    only_b = fernet(keys(tmp_path, KEY_B))
    assert only_b.decrypt(rotated) == b"hunter2-password"
    with pytest.raises(InvalidToken):
        only_b.decrypt(stored)  # not rotated: unreadable once the old key is gone


def test_the_newest_key_encrypts(tmp_path: Path) -> None:
    token = fernet(keys(tmp_path, KEY_B, KEY_A)).encrypt(b"value")
    assert Fernet(KEY_B.encode()).decrypt(token) == b"value"
    with pytest.raises(InvalidToken):
        Fernet(KEY_A.encode()).decrypt(token)


def test_a_malformed_key_names_the_setting_and_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="zonda secrets new-key"):
        fernet(keys(tmp_path, KEY_A, "not-a-key"))


def test_an_embedded_installation_generates_a_private_key_once(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    first = secret_keys(settings)
    assert secret_keys(settings) == first
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "value",
    ["postgresql://user:pa55@db.internal:5432/warehouse", '{"host": "smtp.internal", "password": "x"}'],
    ids=["uri", "json"],
)
def test_a_connection_is_a_uri_or_a_json_object(value: str) -> None:
    assert SecretWrite(value=value, kind=SecretKind.CONNECTION).value == value


@pytest.mark.parametrize("value", ["just-a-password", "[1, 2]", "localhost:5432"])
def test_anything_else_is_refused_as_a_connection_but_not_as_a_secret(value: str) -> None:
    with pytest.raises(ValidationError, match="a connection's value must be a URI"):
        SecretWrite(value=value, kind=SecretKind.CONNECTION)
    assert SecretWrite(value=value).kind is SecretKind.SECRET


def test_an_empty_value_is_refused() -> None:
    with pytest.raises(ValidationError):
        SecretWrite(value="")
