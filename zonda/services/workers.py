"""Workers: the remote workers the schedulers recorded from heartbeats, with whether each is alive."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zonda.api.schemas import RunningAttempt, WorkerRecord
from zonda.core.liveness import WORKER_BEATS, alive, heartbeat_age
from zonda.db import workers as db
from zonda.db.engine import read_txn
from zonda.db.runs import runs_of_tenants
from zonda.services.access import visible

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from zonda.services.context import Services


def list_workers(svc: Services) -> list[WorkerRecord]:
    """Every recorded worker, by id, with the age of its last heartbeat; only the running attempts of
    the caller's tenants are listed (workers are shared infrastructure, the runs on them are not)."""
    with read_txn(svc.engine) as conn:
        rows = db.list_workers(conn)
        shown = _visible_runs(svc, conn, [r["run_id"] for w in rows for r in w.running])
    interval = svc.settings.heartbeat_interval
    now = svc.now()
    records = []
    for w in rows:
        age = heartbeat_age(now, w.heartbeat_at)
        records.append(
            WorkerRecord(
                worker_id=w.worker_id,
                hostname=w.hostname,
                queues=w.queues,
                concurrency=w.concurrency,
                cpus=w.cpus,
                resting=w.resting,
                running=[
                    RunningAttempt.model_validate(r)
                    for r in w.running
                    if shown is None or r["run_id"] in shown
                ],
                started_at=w.started_at,
                heartbeat_at=w.heartbeat_at,
                heartbeat_age_seconds=round(age, 3),
                alive=alive(age, interval, WORKER_BEATS),
            )
        )
    return records


def _visible_runs(svc: Services, conn: Connection, run_ids: list[str]) -> set[str] | None:
    """The run ids the caller may see among `run_ids`; None means all of them."""
    tenants = visible(svc)
    return None if tenants is None else runs_of_tenants(conn, run_ids, tenants)
