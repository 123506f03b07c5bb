"""Load a DAG file's source as a module and find the DAGs it defines."""

from __future__ import annotations

import sys
import types
from pathlib import Path

from zonda.errors import NotFoundError
from zonda.sdk.dag import DAG


def load_module(source: str, fileloc: str, module_name: str) -> types.ModuleType:
    """Execute `source` as module `module_name`, with `__file__` = `fileloc` and its folder importable."""
    folder = str(Path(fileloc).parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module = types.ModuleType(module_name)
    module.__file__ = fileloc
    sys.modules[module_name] = module
    try:
        exec(compile(source, fileloc, "exec"), module.__dict__)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def dags_in(module: types.ModuleType) -> dict[str, DAG]:
    """Every DAG object at the top level of `module`, by DAG id."""
    return {value.dag_id: value for value in vars(module).values() if isinstance(value, DAG)}


def find_dag(module: types.ModuleType, dag_id: str) -> DAG:
    found = dags_in(module)
    if dag_id not in found:
        raise NotFoundError(f"DAG '{dag_id}' is not defined in {module.__file__}; found: {sorted(found)}")
    return found[dag_id]
