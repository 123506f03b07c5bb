"""Workers: the remote workers the schedulers recorded from heartbeats, with whether each is alive."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zonda.api.schemas import RunningAttempt, WorkerRecord
from zonda.db import workers as db
from zonda.db.engine import read_txn

if TYPE_CHECKING:
    from zonda.services.context import Services

ALIVE_BEATS = 3
"""A worker whose last heartbeat is older than this many intervals counts as gone (as for its tasks)."""


def list_workers(svc: Services) -> list[WorkerRecord]:
    """Every recorded worker, by id, with the age of its last heartbeat."""
    with read_txn(svc.engine) as conn:
        rows = db.list_workers(conn)
    limit = ALIVE_BEATS * svc.settings.heartbeat_interval
    now = svc.now()
    records = []
    for w in rows:
        age = max(0.0, (now - w.heartbeat_at).total_seconds())
        records.append(
            WorkerRecord(
                worker_id=w.worker_id,
                hostname=w.hostname,
                queues=w.queues,
                concurrency=w.concurrency,
                running=[RunningAttempt.model_validate(r) for r in w.running],
                started_at=w.started_at,
                heartbeat_at=w.heartbeat_at,
                heartbeat_age_seconds=round(age, 3),
                alive=age <= limit,
            )
        )
    return records
