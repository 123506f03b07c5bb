"""Run one DAG in this process, for development and tests, with the server's semantics.

The same `RunGraph` decides readiness, retries, mapping and trigger rules, and the same runner
executes each attempt (serialization included); tasks run one at a time, by the server's order.
"""

from __future__ import annotations

import heapq
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from zonda.api.schemas import RunRecord, TaskRecord
from zonda.artifacts.store import ArtifactStore
from zonda.core.ids import DEFAULT_TENANT, new_run_id
from zonda.core.params import validate_params
from zonda.core.run_graph import RunGraph, TaskInstance, TIKey
from zonda.core.spec import DagSpec
from zonda.core.states import RunTrigger
from zonda.scheduler.ready_queue import ReadyQueue
from zonda.scheduler.recovery import apply_finished
from zonda.scheduler.requests import RunInfo, VersionInfo, build_request
from zonda.sdk.dag import DAG
from zonda.sdk.serialize import dag_to_spec
from zonda.worker.loader import StaticLoader
from zonda.worker.logs import capture_installed
from zonda.worker.protocol import TaskFinished
from zonda.worker.runner import execute

Listener = Callable[[RunGraph, TaskInstance], None]


def run_locally(
    dag: DAG,
    params: Mapping[str, Any] | None = None,
    *,
    key: str | None = None,
    logs_dir: str | None = None,
    secrets: Mapping[str, str] | None = None,
    on_change: Listener | None = None,
) -> RunRecord:
    """Run `dag` to the end in this process and return its run record (raises ParamsError for bad params)."""
    spec = dag_to_spec(dag)
    values = validate_params(spec.params_schema, params or {})
    run_id = new_run_id()
    created = datetime.now(UTC)
    store = ArtifactStore(f"memory://zonda-run/{run_id}", inline_max_bytes=1 << 62)
    version = VersionInfo(dag.dag_id, 0, "", f"local-{run_id}", spec.fileloc, spec)
    graph = RunGraph.new(run_id, spec, values)
    driver = _Driver(graph, version, RunInfo(key, None), store, StaticLoader(dag), on_change)
    with capture_installed():
        driver.run(logs_dir or tempfile.mkdtemp(prefix="zonda-run-"), dict(secrets or {}))
    return run_record(graph, spec, 0, key, RunTrigger.LOCAL, created)


class _Driver:
    """The in-process loop: take the next ready instance, run it, apply the outcome."""

    def __init__(
        self,
        graph: RunGraph,
        version: VersionInfo,
        run: RunInfo,
        store: ArtifactStore,
        loader: StaticLoader,
        on_change: Listener | None,
    ) -> None:
        self.graph, self.version, self.run_info = graph, version, run
        self.store, self.loader, self.on_change = store, loader, on_change
        self.ready = ReadyQueue()
        self.timers: list[tuple[datetime, TIKey]] = []
        self.topo = {t.task_id: i for i, t in enumerate(graph.spec.tasks)}

    def run(self, logs_dir: str, secrets: dict[str, str]) -> None:
        self.graph.start(datetime.now(UTC))
        self._collect()
        while not self.graph.state.finished:
            popped = self.ready.pop()
            if popped is None:
                self._wait_for_retry()
                continue
            self._run_one(popped[1], logs_dir, secrets)

    def _run_one(self, ti_key: TIKey, logs_dir: str, secrets: dict[str, str]) -> None:
        now = datetime.now(UTC)
        try_number = self.graph.mark_queued(ti_key, now)
        request = build_request(
            self.graph, ti_key, try_number, self.version, self.run_info, logs_dir, secrets
        )
        self.graph.mark_running(ti_key, try_number, now)
        self._notify(ti_key)
        done: TaskFinished = execute(request, self.loader, self.store)
        apply_finished(self.graph, done, datetime.now(UTC))
        self._notify(ti_key)
        self._collect()

    def _collect(self) -> None:
        changes = self.graph.changes
        for ti_key in changes.scheduled:
            spec = self.graph.spec.task(ti_key[0])
            self.ready.push(self.graph.run_id, ti_key, spec.priority, 0, self.topo[ti_key[0]])
        for ti_key in changes.retries:
            due = self.graph.instance(ti_key).next_try_at
            assert due is not None
            heapq.heappush(self.timers, (due, ti_key))
        if self.on_change is not None:
            for ti_key in changes.updated | changes.inserted:
                self._notify(ti_key)
        self.graph.changes = type(changes)()

    def _wait_for_retry(self) -> None:
        due, ti_key = heapq.heappop(self.timers)
        time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
        self.graph.retry_due(ti_key)
        self._collect()

    def _notify(self, ti_key: TIKey) -> None:
        if self.on_change is not None and ti_key[0] in self.topo:
            try:
                self.on_change(self.graph, self.graph.instance(ti_key))
            except KeyError:
                return


def run_record(
    graph: RunGraph, spec: DagSpec, version: int, key: str | None, trigger: str, created: datetime
) -> RunRecord:
    """The run record of an in-memory run (the same shape the API returns)."""
    tasks = [
        TaskRecord(
            task_id=ti.task_id,
            map_index=ti.map_index,
            state=ti.state.value,
            try_number=ti.try_number,
            max_tries=ti.max_tries,
            upstream=list(spec.task(ti.task_id).upstream),
            queued_at=ti.queued_at,
            started_at=ti.started_at,
            ended_at=ti.ended_at,
            error=ti.error,
        )
        for ti in graph.instances()
    ]
    started = min((t.started_at for t in tasks if t.started_at), default=None)
    return RunRecord(
        run_id=graph.run_id,
        tenant_id=DEFAULT_TENANT,
        dag_id=spec.dag_id,
        dag_version=version,
        state=graph.state.value,
        key=key,
        params=graph.params,
        trigger=trigger,
        created_at=created,
        started_at=started,
        ended_at=graph.ended_at,
        tasks=tasks,
    )
