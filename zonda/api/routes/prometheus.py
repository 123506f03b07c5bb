"""`GET /metrics`: the server's state in Prometheus' text format, for a scraper with an API token."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from zonda.api.errors import ERROR_RESPONSES
from zonda.api.routes.deps import ServicesDep
from zonda.services import prometheus

router = APIRouter(tags=["metrics"], responses=ERROR_RESPONSES)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(svc: ServicesDep) -> Response:
    """Scheduler and worker liveness, the DB, each visible tenant's queue depth, and its latency
    percentiles over the last 5 minutes, as Prometheus gauges (scrape with `Authorization: Bearer`)."""
    return Response(prometheus.exposition(svc), media_type=CONTENT_TYPE_LATEST)
