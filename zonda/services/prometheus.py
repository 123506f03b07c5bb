"""The server's state for Prometheus: what the system page and the latency dashboard show, as gauges.

Built per scrape from the same service functions the API uses, so a caller sees only the tenants it
may read. Latency figures cover the last `LATENCY_WINDOW`, per tenant (per DAG: the JSON API).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from zonda.api.schemas.metrics import Figures, LatencyReport, SystemStatus
from zonda.services.metrics import latency_report, system_status

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from zonda.services.context import Services

LATENCY_WINDOW = timedelta(minutes=5)
"""The span the latency gauges cover, ending at the scrape (a few scrape intervals)."""

QUANTILES = {"p50": "0.5", "p95": "0.95", "p99": "0.99"}
"""The dashboard's percentiles, by Prometheus' `quantile` label."""


def exposition(svc: Services) -> bytes:
    """The metrics in Prometheus' text format."""
    now = svc.now()
    system = system_status(svc)
    latency = latency_report(svc, since=now - LATENCY_WINDOW, until=now, bucket="5m")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(system, latency))
    return generate_latest(registry)


class _Snapshot(Collector):
    """One scrape's gauges, from a system status and a latency report taken just before."""

    def __init__(self, system: SystemStatus, latency: LatencyReport) -> None:
        self.system = system
        self.latency = latency

    def collect(self) -> Iterator[Metric]:
        yield from self._system()
        yield from self._latency()

    def _system(self) -> Iterator[Metric]:
        s = self.system
        yield _gauge(
            "zonda_status_ok",
            "1 when every part works, 0 when the system page shows a problem",
            s.status == "ok",
        )
        yield _gauge("zonda_database_reachable", "1 when the metadata DB answered", s.database.reachable)
        if s.database.round_trip_ms is not None:
            yield _gauge(
                "zonda_database_round_trip_seconds",
                "A trivial query's round trip",
                s.database.round_trip_ms / 1000,
            )
        age = GaugeMetricFamily(
            "zonda_scheduler_heartbeat_age_seconds",
            "Seconds since each scheduler's last heartbeat",
            labels=["scheduler", "hostname"],
        )
        up = GaugeMetricFamily(
            "zonda_scheduler_alive", "1 while a scheduler heartbeats", labels=["scheduler", "hostname"]
        )
        for sched in s.schedulers:
            age.add_metric([sched.id, sched.hostname], sched.heartbeat_age_seconds)
            up.add_metric([sched.id, sched.hostname], float(sched.alive))
        yield age
        yield up
        worker_up = GaugeMetricFamily(
            "zonda_worker_alive", "1 while a Celery worker heartbeats", labels=["worker", "hostname"]
        )
        slots = GaugeMetricFamily("zonda_worker_slots", "A worker's concurrency", labels=["worker"])
        cpus = GaugeMetricFamily("zonda_worker_cpus", "CPUs a worker's slots share", labels=["worker"])
        busy = GaugeMetricFamily("zonda_worker_running_tasks", "Tasks a worker runs now", labels=["worker"])
        resting = GaugeMetricFamily(
            "zonda_worker_resting_slots",
            "A worker's slots that take no task now (they take turns)",
            labels=["worker"],
        )
        for w in s.workers:
            worker_up.add_metric([w.worker_id, w.hostname], float(w.alive))
            slots.add_metric([w.worker_id], w.concurrency)
            if w.cpus is not None:
                cpus.add_metric([w.worker_id], w.cpus)
            busy.add_metric([w.worker_id], len(w.running))
            resting.add_metric([w.worker_id], w.resting)
        yield from (worker_up, slots, cpus, busy, resting)
        tasks = GaugeMetricFamily(
            "zonda_tasks", "Task instances waiting or in flight, by state", labels=["tenant", "state"]
        )
        runs = GaugeMetricFamily("zonda_runs", "Runs queued or running, by state", labels=["tenant", "state"])
        waiting = GaugeMetricFamily(
            "zonda_queue_waiting_tasks",
            "Celery: queued tasks not started, held by a scheduler or on the broker, per broker queue",
            labels=["tenant", "queue"],
        )
        for t in s.tenants:
            for queue, count in t.waiting_by_queue.items():
                waiting.add_metric([t.tenant_id, queue], count)
            for state, count in (
                ("scheduled", t.scheduled_tasks),
                ("queued", t.queued_tasks),
                ("running", t.running_tasks),
            ):
                tasks.add_metric([t.tenant_id, state], count)
            runs.add_metric([t.tenant_id, "queued"], t.queued_runs)
            runs.add_metric([t.tenant_id, "running"], t.running_runs)
        yield tasks
        yield runs
        yield waiting

    def _latency(self) -> Iterator[Metric]:
        window = f" over the last {int(LATENCY_WINDOW.total_seconds())} s"
        families = {
            "transition": GaugeMetricFamily(
                "zonda_transition_latency_seconds",
                "Start of a task minus the end of its last upstream task" + window,
                labels=["tenant", "quantile"],
            ),
            "queue_wait": GaugeMetricFamily(
                "zonda_queue_wait_seconds",
                "Started minus queued, per attempt" + window,
                labels=["tenant", "quantile"],
            ),
            "run_duration": GaugeMetricFamily(
                "zonda_run_duration_seconds",
                "Ended minus created, per run" + window,
                labels=["tenant", "quantile"],
            ),
        }
        ended = GaugeMetricFamily("zonda_runs_ended", "Runs that ended" + window, labels=["tenant"])
        failed = GaugeMetricFamily("zonda_runs_failed", "Runs that failed" + window, labels=["tenant"])
        tasks = GaugeMetricFamily(
            "zonda_tasks_ended", "Task instances that started and ended" + window, labels=["tenant"]
        )
        for tenant in self.latency.tenants:
            _add_quantiles(families, tenant.tenant_id, tenant.total)
            ended.add_metric([tenant.tenant_id], tenant.total.runs_ended)
            failed.add_metric([tenant.tenant_id], tenant.total.runs_failed)
            tasks.add_metric([tenant.tenant_id], tenant.total.tasks_ended)
        yield from families.values()
        yield from (ended, failed, tasks)


def _add_quantiles(families: dict[str, GaugeMetricFamily], tenant: str, figures: Figures) -> None:
    """One sample per quantile that has a value (a quantile of no values is left out)."""
    sources = {
        "transition": figures.transition_ms,
        "queue_wait": figures.queue_wait_ms,
        "run_duration": figures.run_duration_ms,
    }
    for name, percentiles in sources.items():
        for field, quantile in QUANTILES.items():
            value = getattr(percentiles, field)
            if value is not None:
                families[name].add_metric([tenant, quantile], value / 1000)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))
