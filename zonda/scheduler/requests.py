"""Build the `TaskRequest` for a task instance that is about to be dispatched."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from zonda.artifacts.store import output_path
from zonda.core.run_graph import RunGraph, TIKey
from zonda.core.spec import DagSpec
from zonda.worker.logs import log_path
from zonda.worker.protocol import TaskRequest


@dataclass(frozen=True)
class VersionInfo:
    """What a worker needs to import one DAG version."""

    dag_id: str
    version: int
    code_uri: str
    code_hash: str
    fileloc: str
    spec: DagSpec


@dataclass(frozen=True)
class RunInfo:
    """Run facts a task's context carries."""

    key: str | None
    logical_date: datetime | None


def build_request(
    graph: RunGraph,
    ti_key: TIKey,
    try_number: int,
    version: VersionInfo,
    run: RunInfo,
    logs_dir: str,
    secrets: Mapping[str, str],
) -> TaskRequest:
    task_id, map_index = ti_key
    spec = version.spec.task(task_id)
    return TaskRequest(
        run_id=graph.run_id,
        dag_id=version.dag_id,
        task_id=task_id,
        map_index=map_index,
        try_number=try_number,
        dag_version=version.version,
        code_uri=version.code_uri,
        code_hash=version.code_hash,
        fileloc=version.fileloc,
        log_path=log_path(logs_dir, version.dag_id, graph.run_id, task_id, map_index, try_number),
        output_path=output_path(version.dag_id, graph.run_id, task_id, map_index, try_number),
        params=graph.params,
        inputs=dict(graph.upstream_outputs(task_id)),
        key=run.key,
        logical_date=run.logical_date,
        timeout=spec.timeout,
        queue=spec.queue,
        pool=spec.pool,
        secrets=dict(secrets),
    )
