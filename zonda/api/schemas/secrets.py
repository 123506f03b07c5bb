"""The JSON shapes of tenant secrets and connections: a value goes in, and never comes back out."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, StringConstraints, model_validator

from zonda.api.schemas import Timestamp

SECRET_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
"""Letters, digits and underscores, not starting with a digit: a task's bash command sees the secret
as the environment variable `ZONDA_SECRET_<NAME>`, so the name must be valid there."""

SecretName = Annotated[str, StringConstraints(pattern=SECRET_NAME)]


class SecretKind(StrEnum):
    """A plain secret, or a connection: a URI (`postgresql://u:p@h/db`) or a JSON object."""

    SECRET = "secret"
    CONNECTION = "connection"


class SecretWrite(BaseModel):
    """What an admin sends to create or replace a secret."""

    value: Annotated[str, Field(min_length=1, max_length=65536)]
    kind: SecretKind = SecretKind.SECRET
    description: Annotated[str, Field(max_length=2000)] = ""

    @model_validator(mode="after")
    def _connection_shape(self) -> SecretWrite:
        """A connection must be a URI with a scheme or a JSON object, so tasks can parse it."""
        if self.kind is SecretKind.CONNECTION and not (_is_uri(self.value) or _is_json_object(self.value)):
            raise ValueError(
                "a connection's value must be a URI such as postgresql://user:password@host/db "
                'or a JSON object such as {"host": "...", "password": "..."}'
            )
        return self


class SecretRecord(BaseModel):
    """A secret as the API shows it: its name and facts about it, never its value."""

    tenant_id: str
    name: str
    kind: SecretKind
    description: str
    created_at: Timestamp
    updated_at: Timestamp


def _is_uri(value: str) -> bool:
    parts = urlsplit(value.strip())
    return bool(parts.scheme) and value.strip().startswith(f"{parts.scheme}://")


def _is_json_object(value: str) -> bool:
    try:
        return isinstance(json.loads(value), dict)
    except ValueError:
        return False
