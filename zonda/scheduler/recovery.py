"""After a restart: store the outcomes workers journaled but the scheduler never committed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from zonda.core.run_graph import RunGraph
from zonda.scheduler.active import ActiveRun
from zonda.worker.protocol import TaskFinished


def restore_outcomes(runs: Mapping[str, ActiveRun], records: list[TaskFinished], now: datetime) -> int:
    """Apply journaled outcomes in the order tasks ended (so upstream results unlock downstream ones)."""
    applied = 0
    for record in sorted(records, key=lambda r: r.ended_at):
        active = runs.get(record.run_id)
        key = (record.task_id, record.map_index)
        if active is None or key[0] not in active.version.spec.task_map:
            continue
        graph = active.graph
        try:
            graph.instance(key)
        except KeyError:
            continue
        if graph.restore_attempt(key, record.try_number, record.started_at):
            apply_finished(graph, record, now)
            applied += 1
    return applied


def apply_finished(graph: RunGraph, message: TaskFinished, now: datetime) -> None:
    """Record a worker's `TaskFinished` in the run graph (stale reports are ignored there)."""
    graph.finish(
        (message.task_id, message.map_index),
        message.try_number,
        ok=message.ok,
        now=now,
        started_at=message.started_at,
        ended_at=message.ended_at,
        output=message.output,
        length=message.length,
        error=message.error,
    )
