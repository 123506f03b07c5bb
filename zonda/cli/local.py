"""`zonda run FILE`: run a DAG in this process (no server, no DB) with live progress in the terminal."""

from __future__ import annotations

import itertools
import re
import tempfile
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zonda.api.schemas import RunRecord, TaskRecord
from zonda.cli import render
from zonda.core.params import parse_param_value
from zonda.core.run_graph import RunGraph, TaskInstance
from zonda.errors import ParamsError
from zonda.inprocess import Listener, run_locally
from zonda.sdk.dag import DAG
from zonda.sdk.discovery import dags_in, load_module
from zonda.sdk.params import params_schema

USAGE = 2
"""Exit code for bad usage or bad params (1 means the run itself failed)."""

_JSON_TYPES: dict[type, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}
_module_numbers = itertools.count()


def run_file(
    path: Path, dag_id: str | None, raw_params: Sequence[str], key: str | None, as_json: bool
) -> int:
    """Import `path`, run the chosen DAG to the end and show it; returns the exit code."""
    dag = pick_dag(load_dags(path), dag_id, path)
    params = parse_params(raw_params, params_schema(dag.params, dag.dag_id))
    logs_dir = tempfile.mkdtemp(prefix="zonda-run-")
    progress = None if as_json else render.TaskProgress()
    listener = None if progress is None else _listener(progress)
    try:
        record = run_locally(dag, params, key=key, logs_dir=logs_dir, on_change=listener)
    except ParamsError as exc:
        render.fail(str(exc), exc.details, code=USAGE)
    _show(record, as_json, logs_dir)
    return 0 if record.state == "success" else 1


def load_dags(path: Path) -> dict[str, DAG]:
    """The DAGs a file defines; a file that fails to import exits 1 showing its traceback."""
    stem = re.sub(r"\W", "_", path.stem)
    module_name = f"zonda_local_{stem}_{next(_module_numbers)}"
    try:
        module = load_module(path.read_text(encoding="utf-8"), str(path.resolve()), module_name)
    except Exception:
        render.console(stderr=True).print(traceback.format_exc(), markup=False)
        render.fail(f"{path} failed to import (traceback above)")
    return dags_in(module)


def pick_dag(found: Mapping[str, DAG], dag_id: str | None, path: Path) -> DAG:
    """The DAG asked for, or the file's only DAG; exit 2 listing the ids when that is ambiguous."""
    ids = ", ".join(sorted(found))
    if dag_id is not None:
        if dag_id not in found:
            render.fail(f"{path} defines no DAG '{dag_id}'; it defines: {ids or 'none'}", code=USAGE)
        return found[dag_id]
    if not found:
        render.fail(f"{path} defines no DAG: decorate a function with @dag", code=USAGE)
    if len(found) > 1:
        render.fail(f"{path} defines several DAGs ({ids}); pick one with --dag ID", code=USAGE)
    return next(iter(found.values()))


def parse_params(pairs: Sequence[str], schema: Mapping[str, Any]) -> dict[str, Any]:
    """`--param NAME=VALUE` options as params: JSON values, except where the param wants the raw text."""
    properties: Mapping[str, Any] = schema.get("properties", {})
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            detail = {"param": pair, "message": "write --param NAME=VALUE, e.g. --param epochs=10"}
            raise ParamsError(f"--param {pair!r} is not NAME=VALUE", [detail])
        values[name.strip()] = param_value(text, properties.get(name.strip(), {}))
    return values


def param_value(text: str, prop: Mapping[str, Any]) -> Any:
    """parse_param_value's answer, or `text` itself when the param takes a string and JSON gave another type.

    So `--param version=2` gives "2" to a `version: str` param and 2 to a `version: int` one.
    """
    value = parse_param_value(text)
    allowed = _schema_types(prop)
    kind = _JSON_TYPES.get(type(value), "other")
    fits = kind in allowed or (kind == "integer" and "number" in allowed)
    return text if "string" in allowed and not fits else value


def _schema_types(prop: Mapping[str, Any]) -> set[str]:
    """The JSON types a param's schema accepts (from `type` and `anyOf`)."""
    types = {prop["type"]} if isinstance(prop.get("type"), str) else set(prop.get("type") or ())
    for option in prop.get("anyOf", ()):
        types |= _schema_types(option)
    return types


def _listener(progress: render.TaskProgress) -> Listener:
    """An on_change listener for run_locally that feeds the progress printer."""

    def on_change(_graph: RunGraph, ti: TaskInstance) -> None:
        """Called by run_locally on every task instance change."""
        progress.update(
            TaskRecord(
                task_id=ti.task_id,
                map_index=ti.map_index,
                state=ti.state.value,
                try_number=ti.try_number,
                max_tries=ti.max_tries,
                error=ti.error,
            )
        )

    return on_change


def _show(record: RunRecord, as_json: bool, logs_dir: str) -> None:
    """The finished run: JSON only, or the tasks table and where the logs are."""
    if as_json:
        render.print_json(record)
        return
    render.run_view(record)
    render.console(stderr=True).print(f"logs: {logs_dir}", style="dim", markup=False)
