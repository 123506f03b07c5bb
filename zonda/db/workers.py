"""Remote workers as the schedulers last saw them (from their heartbeats), for `zonda workers list`.

Every scheduler sees every worker's heartbeat and records it, so rows are upserted (the latest
write wins; rows are written in key order so two schedulers never deadlock on PostgreSQL).
Rows are not deleted when a worker stops: the API shows how old each heartbeat is, and
`prune_workers` drops the ones long gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select

from zonda.db.dialect import upsert
from zonda.db.schema import workers


@dataclass(frozen=True)
class Worker:
    """One worker's latest heartbeat; `running` holds {run_id, task_id, map_index, try_number} dicts."""

    worker_id: str
    hostname: str
    queues: list[str]
    concurrency: int
    started_at: datetime
    heartbeat_at: datetime
    running: list[dict[str, Any]] = field(default_factory=list)
    cpus: int | None = None
    """CPUs its slots share, as the worker found them; None from a worker that does not say."""
    resting: int = 0
    """Slots that take no task now: with more slots than CPUs, they take turns (ADR 0013)."""


def record_heartbeats(conn: Connection, beats: Sequence[Worker]) -> None:
    """Insert or refresh the workers of `beats` (the latest beat per worker wins)."""
    latest: dict[str, Worker] = {}
    for beat in beats:
        if beat.worker_id not in latest or latest[beat.worker_id].heartbeat_at <= beat.heartbeat_at:
            latest[beat.worker_id] = beat
    rows = [_row(latest[worker_id]) for worker_id in sorted(latest)]
    upsert(conn, workers, rows, ["worker_id"])


def list_workers(conn: Connection) -> list[Worker]:
    """Every recorded worker, by id."""
    rows = conn.execute(select(workers).order_by(workers.c.worker_id))
    return [
        Worker(
            worker_id=r.worker_id,
            hostname=r.hostname,
            queues=list(r.queues),
            concurrency=r.concurrency,
            started_at=r.started_at,
            heartbeat_at=r.heartbeat_at,
            running=list(r.running),
            cpus=r.cpus,
            resting=r.resting or 0,
        )
        for r in rows
    ]


def prune_workers(conn: Connection, before: datetime) -> int:
    """Delete workers whose last heartbeat is older than `before`; returns how many."""
    return int(conn.execute(delete(workers).where(workers.c.heartbeat_at < before)).rowcount or 0)


def _row(beat: Worker) -> dict[str, Any]:
    return {
        "worker_id": beat.worker_id,
        "hostname": beat.hostname,
        "queues": list(beat.queues),
        "concurrency": beat.concurrency,
        "cpus": beat.cpus,
        "resting": beat.resting,
        "running": list(beat.running),
        "started_at": beat.started_at,
        "heartbeat_at": beat.heartbeat_at,
    }
