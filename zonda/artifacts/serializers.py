"""Serializers for return values: JSON for plain data, pickle as fallback, others by dotted path."""

from __future__ import annotations

import importlib
import json
import pickle
from typing import Any, Protocol, runtime_checkable

from zonda.errors import ConfigError


@runtime_checkable
class Serializer(Protocol):
    """Turns a value into bytes and back. `dumps` raises TypeError/ValueError for values it cannot take."""

    name: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class JsonSerializer:
    """Plain data only (dict with str keys, list, str, int, float, bool, None), so it reads back equal."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        if not is_plain(value):
            raise TypeError(f"{type(value).__name__} is not plain JSON data")
        return json.dumps(value, separators=(",", ":")).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class PickleSerializer:
    """Any picklable Python object (read back only by code that can import its classes)."""

    name = "pickle"

    def dumps(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, AttributeError) as exc:
            raise TypeError(str(exc)) from exc

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


SERIALIZERS: dict[str, Serializer] = {"json": JsonSerializer(), "pickle": PickleSerializer()}
DEFAULT_CHAIN = ("json", "pickle")


def resolve_serializer(name: str) -> Serializer:
    """A serializer by alias ("json", "pickle") or dotted path ("package.module:ClassOrInstance")."""
    if name in SERIALIZERS:
        return SERIALIZERS[name]
    module_name, _, attr = name.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"serializer {name!r} not found: use 'json', 'pickle' or 'package.module:Serializer'"
        ) from exc
    serializer = found() if isinstance(found, type) else found
    if not isinstance(serializer, Serializer):
        raise ConfigError(f"serializer {name!r} needs a `name` and `dumps`/`loads` methods")
    SERIALIZERS[name] = serializer
    return serializer


def is_plain(value: Any) -> bool:
    """True if JSON holds `value` exactly (no tuples, sets, custom objects or non-str keys)."""
    if value is None or isinstance(value, str | bool | int | float):
        return True
    if type(value) is list:
        return all(is_plain(v) for v in value)
    if type(value) is dict:
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    return False
