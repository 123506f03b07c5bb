"""A per-process cache of imported DAG modules, one per DAG version (a task costs a call, not an import)."""

from __future__ import annotations

import types
from collections import OrderedDict

import fsspec

from zonda.errors import ConfigError
from zonda.sdk.dag import DAG
from zonda.sdk.discovery import find_dag, load_module
from zonda.worker.protocol import TaskRequest


class DagLoader:
    """Imports each DAG version's code once and keeps the most recently used modules."""

    def __init__(self, max_modules: int = 64) -> None:
        self.max_modules = max_modules
        self._modules: OrderedDict[str, types.ModuleType] = OrderedDict()

    def dag(self, request: TaskRequest) -> DAG:
        """The request's DAG: the module defines it by its name, without the tenant (`team-a/etl` -> `etl`)."""
        return find_dag(self.module(request), request.dag_id.rpartition("/")[2])

    def module(self, request: TaskRequest) -> types.ModuleType:
        module = self._modules.get(request.code_hash)
        if module is not None:
            self._modules.move_to_end(request.code_hash)
            return module
        try:
            with fsspec.open(request.code_uri, "r", encoding="utf-8") as f:
                source = f.read()
        except FileNotFoundError as exc:
            raise ConfigError(
                f"the code of {request.dag_id} version {request.dag_version} is not at {request.code_uri}: "
                "this worker must see the code store the DAG processor writes (ZONDA_HOME/code on storage "
                "they share)"
            ) from exc
        module = load_module(source, request.fileloc, f"zonda_dag_{request.code_hash[:16]}")
        self._modules[request.code_hash] = module
        if len(self._modules) > self.max_modules:
            self._modules.popitem(last=False)
        return module


class StaticLoader:
    """Serves one already-imported DAG (used by `zonda run`, which imports the file itself)."""

    def __init__(self, dag: DAG) -> None:
        self._dag = dag

    def dag(self, request: TaskRequest) -> DAG:
        return self._dag
