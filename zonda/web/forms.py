"""The trigger form, generated from a DAG's params schema (JSON Schema), and its values read back.

Form fields are text; each is turned into the schema's type where it parses (so the API's validator
reports what is wrong with the rest, e.g. "'abc' is not of type 'integer'"). An empty field is left
out, so the param's default applies (or the validator says it is missing).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ParamField:
    """One input of the trigger form."""

    name: str
    label: str
    kind: str
    """integer, number, boolean, string, choice or json (arrays, objects, anything else)."""
    value: str
    required: bool
    help: str = ""
    choices: list[str] = field(default_factory=list)


def param_fields(schema: Mapping[str, Any], given: Mapping[str, str]) -> list[ParamField]:
    """The form's fields in the schema's order, filled with what the user typed, else the default."""
    required = set(schema.get("required", []))
    found = []
    for name, prop in schema.get("properties", {}).items():
        kind = _kind(prop)
        default = prop.get("default")
        value = given.get(name, "" if default is None else _text(default, kind))
        found.append(
            ParamField(
                name=name,
                label=str(prop.get("title") or name),
                kind=kind,
                value=value,
                required=name in required,
                help=_help(prop, kind, default),
                choices=[_text(c, "json") if not isinstance(c, str) else c for c in prop.get("enum", [])],
            )
        )
    return found


def parse_params(schema: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """The params to send: each non-empty field converted to its schema type where it parses."""
    properties = schema.get("properties", {})
    params: dict[str, Any] = {}
    for name, text in values.items():
        if text.strip() == "":
            continue
        params[name] = _convert(text, _kind(properties.get(name, {})))
    return params


def _kind(prop: Mapping[str, Any]) -> str:
    if "enum" in prop:
        return "choice"
    types = [prop.get("type")] + [option.get("type") for option in prop.get("anyOf", [])]
    for t in types:
        if t in ("integer", "number", "boolean", "string"):
            return str(t)
    return "json"


def _convert(text: str, kind: str) -> Any:
    """`text` as `kind` if it parses as one, else the text itself (the validator names the problem)."""
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
        if kind == "boolean":
            return {"true": True, "false": False}[text.lower()]
        if kind in ("json", "choice"):
            return json.loads(text) if kind == "json" else text
    except (ValueError, KeyError):
        return text
    return text


def _text(value: Any, kind: str) -> str:
    if kind == "boolean":
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _help(prop: Mapping[str, Any], kind: str, default: Any) -> str:
    parts = [str(prop["description"])] if prop.get("description") else []
    parts.append({"json": "JSON value", "choice": "one of the listed values"}.get(kind, kind))
    if default is not None:
        parts.append(f"default {_text(default, kind)}")
    return "; ".join(parts)
