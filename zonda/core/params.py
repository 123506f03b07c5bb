"""Validate run params against a DAG's params schema (server side: no user code is imported)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator

from zonda.errors import ParamsError


def validate_params(schema: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The run's params (defaults filled in), or ParamsError naming each bad or missing param."""
    properties: Mapping[str, Any] = schema.get("properties", {})
    details = [
        {"param": name, "message": f"unknown param; this DAG takes: {', '.join(properties) or 'no params'}"}
        for name in given
        if name not in properties
    ]
    values = {name: prop["default"] for name, prop in properties.items() if "default" in prop}
    values.update({k: v for k, v in given.items() if k in properties})
    validator = Draft202012Validator(dict(schema), format_checker=Draft202012Validator.FORMAT_CHECKER)
    for error in validator.iter_errors(values):
        details.append(_detail(error.path, error.message, error.validator, error.validator_value))
    if details:
        listed = "; ".join(f"{d['param']}: {d['message']}" for d in details)
        raise ParamsError(f"bad params: {listed}", details)
    return values


def _detail(path: Any, message: str, validator: Any, value: Any) -> dict[str, str]:
    if validator == "required":
        missing = message.split("'")[1] if "'" in message else str(value)
        return {"param": missing, "message": "missing required param"}
    name = ".".join(str(p) for p in path) or "params"
    return {"param": name, "message": message}


def parse_param_value(text: str) -> Any:
    """A `--param k=v` value: JSON if it parses (42, true, [1,2], {"a":1}), else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text
