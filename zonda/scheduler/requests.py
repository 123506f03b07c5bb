"""Build the `TaskRequest` for a task instance that is about to be dispatched."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from zonda.artifacts.store import output_path
from zonda.auth.keys import run_token, secret_keys
from zonda.core.run_graph import RunGraph, TIKey
from zonda.core.spec import DagSpec
from zonda.worker.logs import log_path
from zonda.worker.protocol import TaskRequest

if TYPE_CHECKING:
    from zonda.settings import Settings


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


@dataclass(frozen=True)
class ApiAccess:
    """How a run's tasks reach the API: the server's URL and a token per run, signed by the server's keys."""

    url: str
    keys: tuple[bytes, ...]

    @classmethod
    def of(cls, settings: Settings) -> ApiAccess:
        return cls(settings.server_url, tuple(secret_keys(settings)))

    def token(self, run_id: str) -> str:
        return run_token(list(self.keys), run_id)


def build_request(
    graph: RunGraph,
    ti_key: TIKey,
    try_number: int,
    version: VersionInfo,
    run: RunInfo,
    logs_dir: str,
    secrets: Mapping[str, str],
    api: ApiAccess | None = None,
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
        priority=spec.priority,
        secrets=dict(secrets),
        api_url=api.url if api is not None else "",
        api_token=api.token(graph.run_id) if api is not None else "",
        queued_at=graph.instance(ti_key).queued_at,
    )
