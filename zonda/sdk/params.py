"""DAG params: the `@dag` function's own arguments, as a pydantic model and a JSON schema."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from zonda.errors import DagDefinitionError, ParamsError


def params_model(fn: Callable[..., Any], dag_id: str) -> type[BaseModel]:
    """A pydantic model with one field per argument of the DAG function (hint and default kept)."""
    fields: dict[str, Any] = {}
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise DagDefinitionError(f"DAG '{dag_id}': *args/**kwargs cannot be params; name each param")
        hint = Any if param.annotation is inspect.Parameter.empty else param.annotation
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[name] = (hint, default)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=False)
    try:
        return create_model(f"{dag_id}_params", __config__=config, **fields)
    except Exception as exc:
        raise DagDefinitionError(f"DAG '{dag_id}': its params cannot be described: {exc}") from exc


def params_schema(model: type[BaseModel], dag_id: str) -> dict[str, Any]:
    """The JSON schema the server validates run params against (no user code needed there)."""
    try:
        return model.model_json_schema()
    except Exception as exc:
        raise DagDefinitionError(
            f"DAG '{dag_id}': a param's type has no JSON form ({exc}); use str, int, float, bool, "
            "date, datetime, lists, dicts, Literal or Enum"
        ) from exc


def coerce_params(model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and convert params to the Python types the DAG function declares."""
    try:
        return dict(model.model_validate(dict(values)))
    except ValidationError as exc:
        details = [{"param": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()]
        listed = "; ".join(f"{d['param']}: {d['message']}" for d in details)
        raise ParamsError(f"bad params: {listed}", details) from exc
