"""Turn a task node's bound arguments (with placeholders) into the values its function receives."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from zonda.artifacts.store import ArtifactStore
from zonda.core.mapping import element_indices
from zonda.sdk.graph import TaskNode
from zonda.sdk.refs import ParamRef, TaskRef
from zonda.worker.protocol import InputValue


class Inputs:
    """Upstream return values, loaded on first use (a mapped instance loads only its element)."""

    def __init__(self, refs: Mapping[str, InputValue], store: ArtifactStore) -> None:
        self.refs = refs
        self.store = store
        self._loaded: dict[str, Any] = {}

    def value(self, task_id: str) -> Any:
        if task_id not in self._loaded:
            ref = self.refs.get(task_id)
            if isinstance(ref, list):
                self._loaded[task_id] = [self.store.load(r) for r in ref]
            else:
                self._loaded[task_id] = None if ref is None else self.store.load(ref)
        return self._loaded[task_id]

    def length(self, task_id: str) -> int:
        ref = self.refs.get(task_id)
        if isinstance(ref, list):
            return len(ref)
        if ref is None or task_id in self._loaded:
            return len(self.value(task_id))
        return len(self.store.load_shared(ref))

    def element(self, task_id: str, index: int) -> Any:
        """One element of an upstream list, without decoding the list for each mapped instance
        (`ArtifactStore.load_shared`); a copy, so the task may change it freely."""
        ref = self.refs.get(task_id)
        if task_id in self._loaded or ref is None:
            return self.value(task_id)[index]
        if isinstance(ref, list):
            return self.store.load(ref[index])
        return copy.deepcopy(self.store.load_shared(ref)[index])


def bind_arguments(
    node: TaskNode, params: Mapping[str, Any], inputs: Inputs, map_index: int
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword arguments for one call of the node's function."""
    args = tuple(_resolve(a, params, inputs) for a in node.args)
    kwargs = {k: _resolve(v, params, inputs) for k, v in node.kwargs.items()}
    if node.mapped:
        names = list(node.mapped)
        lengths = [_length(node.mapped[n], params, inputs) for n in names]
        for name, index in zip(names, element_indices(map_index, lengths), strict=True):
            kwargs[name] = _element(node.mapped[name], index, params, inputs)
    return args, kwargs


def _resolve(value: Any, params: Mapping[str, Any], inputs: Inputs) -> Any:
    if isinstance(value, TaskRef):
        return inputs.value(value.task_id)
    if isinstance(value, ParamRef):
        return params[value.name]
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(_resolve(v, params, inputs) for v in value)
    if isinstance(value, dict):
        return {k: _resolve(v, params, inputs) for k, v in value.items()}
    return value


def _length(source: Any, params: Mapping[str, Any], inputs: Inputs) -> int:
    if isinstance(source, TaskRef):
        return inputs.length(source.task_id)
    return len(_resolve(source, params, inputs))


def _element(source: Any, index: int, params: Mapping[str, Any], inputs: Inputs) -> Any:
    if isinstance(source, TaskRef):
        return inputs.element(source.task_id, index)
    return _resolve(source, params, inputs)[index]
