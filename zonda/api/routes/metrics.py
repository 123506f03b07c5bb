"""Metrics: the latency dashboard's figures and the system page's state."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from zonda.api.errors import ERROR_RESPONSES
from zonda.api.routes.deps import ServicesDep
from zonda.api.schemas.metrics import LatencyReport, SystemStatus
from zonda.services import metrics

router = APIRouter(prefix="/api/v1/metrics", tags=["metrics"], responses=ERROR_RESPONSES)


@router.get("/latency")
def latency(
    svc: ServicesDep,
    tenant_id: str | None = None,
    dag_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    bucket: Annotated[Literal["1m", "5m", "1h", "1d"] | None, Query()] = None,
) -> LatencyReport:
    """Transition latency, queue wait, run durations, failure rate and throughput over [since, until)
    (default: the last 24 hours; naive times are UTC), in total and per bucket (default: the smallest
    of 1m/5m/1h/1d that gives at most 200 buckets)."""
    return metrics.latency_report(
        svc, tenant=tenant_id, dag_id=dag_id, since=since, until=until, bucket=bucket
    )


@router.get("/system")
def system(svc: ServicesDep) -> SystemStatus:
    """Schedulers and their heartbeats, workers, the metadata DB, and each visible tenant's queue depth."""
    return metrics.system_status(svc)
