"""Execute one task attempt from a `TaskRequest`: load code, bind arguments, call, store the result.

Shared by the worker processes of the server and by `zonda run`, so both have the same semantics.
"""

from __future__ import annotations

import os
import signal
import threading
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import Any, Protocol

from zonda.artifacts.store import ArtifactStore
from zonda.core.outputs import ArtifactRef
from zonda.errors import TaskTimeoutError
from zonda.sdk.context import TaskContext, bound_context
from zonda.sdk.dag import DAG
from zonda.sdk.params import coerce_params
from zonda.sdk.secrets import mask, masked_values, task_secrets
from zonda.worker.arguments import Inputs, bind_arguments
from zonda.worker.bash import run_bash
from zonda.worker.logs import captured_output, mask_text
from zonda.worker.protocol import TaskFinished, TaskRequest, TaskStarted


class Loader(Protocol):
    """Finds the DAG object a request refers to."""

    def dag(self, request: TaskRequest) -> DAG: ...


def execute(
    request: TaskRequest,
    loader: Loader,
    store: ArtifactStore,
    on_started: Callable[[TaskStarted], None] | None = None,
    on_finished: Callable[[TaskFinished], None] | None = None,
) -> TaskFinished:
    """Run the attempt; failures of user code become a failed `TaskFinished`, never an exception.

    `on_finished` gets the outcome as soon as it is known, before the log is closed: a worker
    journals it there, so a worker killed after the task's work is less likely to leave no record
    that the attempt ended.
    """
    started = datetime.now(UTC)
    if on_started is not None:
        on_started(
            TaskStarted(
                request.run_id, request.task_id, request.map_index, request.try_number, started, os.getpid()
            )
        )
    header = (
        f"--- {request.dag_id} / {request.run_id} / {_label(request)}: attempt {request.try_number} ---\n"
    )
    with captured_output(request.log_path, header) as log, task_secrets(request.secrets):
        try:
            output, length = _call(request, loader, store)
        except (Exception, SystemExit) as exc:  # any failure of user code is the task's outcome
            traceback.print_exc()
            error = mask_text(f"{type(exc).__name__}: {exc}", masked_values())
            outcome = _finished(request, started, ok=False, error=error)
            ending = f"--- failed: {error} ---\n"
        else:
            outcome = _finished(request, started, ok=True, output=output, length=length)
            ending = "--- success ---\n"
        if on_finished is not None:
            on_finished(outcome)
        log.end(ending)
    return outcome


def _call(request: TaskRequest, loader: Loader, store: ArtifactStore) -> tuple[ArtifactRef, int | None]:
    dag = loader.dag(request)
    node = dag.nodes[request.task_id]
    params = _params(dag, request)
    inputs = Inputs(request.inputs, store)
    ctx = TaskContext(
        run_id=request.run_id,
        dag_id=request.dag_id,
        task_id=request.task_id,
        try_number=request.try_number,
        map_index=request.map_index,
        params=params,
        key=request.key,
        logical_date=request.logical_date,
        dag_version=request.dag_version,
        api_url=request.api_url,
        api_token=mask(request.api_token) if request.api_token else "",
    )
    with bound_context(ctx), time_limit(request.timeout):
        args, kwargs = bind_arguments(node, params, inputs, request.map_index)
        result: Any = node.task.fn(*args, **kwargs)
        if node.task.kind == "bash":
            assert node.task.bash is not None
            result = run_bash(str(result), node.task.bash, ctx, request.secrets)
    ref = store.save(result, request.output_path, node.task.options.serializer, f"task '{request.task_id}'")
    return ref, len(result) if isinstance(result, list | tuple) else None


_coerced: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()


def _params(dag: DAG, request: TaskRequest) -> dict[str, Any]:
    """The run's params as the DAG function's types, converted once per run in this process."""
    key = (request.code_hash, request.run_id)
    if key not in _coerced:
        _coerced[key] = coerce_params(dag.params, request.params)
        if len(_coerced) > 256:
            _coerced.popitem(last=False)
    return _coerced[key]


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise TaskTimeoutError in the block after `seconds` (main thread only; elsewhere no limit here)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expired(signum: int, frame: FrameType | None) -> None:
        raise TaskTimeoutError(f"task timed out after {seconds:g} s (its `timeout` option)")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _finished(
    request: TaskRequest,
    started: datetime,
    ok: bool,
    output: ArtifactRef | None = None,
    length: int | None = None,
    error: str | None = None,
) -> TaskFinished:
    return TaskFinished(
        request.run_id,
        request.task_id,
        request.map_index,
        request.try_number,
        ok=ok,
        started_at=started,
        ended_at=datetime.now(UTC),
        output=output,
        length=length,
        error=error,
    )


def _label(request: TaskRequest) -> str:
    return request.task_id if request.map_index < 0 else f"{request.task_id}[{request.map_index}]"
