"""A `zonda worker` with more slots than CPUs, on Redis and on RabbitMQ: short tasks run one per
CPU, waiting and long ones side by side, and a slot that hands its place over never sends a message
back to the broker (which would mark it redelivered and fail its task). `handover.py`, ADR 0013.

The worker runs on one CPU (its affinity, set with `taskset`), with three slots."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import pytest

from tests.integration.celery_helpers import (
    BROKERS,
    Dag,
    Worker,
    broker_namespace,
    collect,
    finished,
    heard_from,
    make_executor,
    unique,
    worker_keys,
)
from tests.waiting import wait_until
from zonda.executors.celery.app import make_app
from zonda.executors.celery.executor import CeleryExecutor
from zonda.executors.celery.heartbeat import HeartbeatSender
from zonda.settings import Settings
from zonda.worker.protocol import TaskFinished, TaskRequest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=BROKERS)
def broker(request: pytest.FixtureRequest) -> Iterator[str]:
    with broker_namespace(request, request.param) as url:
        yield url


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("turns")


@pytest.fixture(scope="module")
def dag(root: Path) -> Dag:
    return Dag(root)


@contextmanager
def one_cpu(
    broker: str, root: Path, dag: Dag, settings: dict[str, str] | None = None
) -> Iterator[tuple[str, Worker, CeleryExecutor]]:
    """A queue, its worker (3 slots on 1 CPU) and an executor that sends one task per message."""
    queue = unique("turns")
    worker = Worker(broker, root, [queue], concurrency=3, cpus=1, settings=settings)
    executor = make_executor(broker, bundle_seconds=0.0)
    try:
        heard_from(executor, worker)
        executor.submit([dag.request("hello", queue=queue) for _ in range(3)])
        collect(executor, lambda m: len(finished(m)) == 3)  # the consuming slot imports the DAG
        yield queue, worker, executor
    finally:
        executor.stop()
        worker.stop()


@pytest.fixture(scope="module")
def turns(broker: str, root: Path, dag: Dag) -> Iterator[tuple[str, Worker, CeleryExecutor]]:
    with one_cpu(broker, root, dag) as started:
        yield started


def run_all(executor: CeleryExecutor, requests: list[TaskRequest], timeout: float = 30) -> list[TaskFinished]:
    executor.submit(requests)
    done = finished(collect(executor, lambda m: len(finished(m)) == len(requests), timeout=timeout))
    failed = [(m.task_id, m.error) for m in done if not m.ok]
    assert not failed, f"a handover sent a message back to the broker, or a task failed: {failed}"
    return done


def spans(done: list[TaskFinished]) -> list[tuple[datetime, datetime]]:
    return sorted((m.started_at, m.ended_at) for m in done)


def all_at_once(done: list[TaskFinished]) -> bool:
    """Whether every task started before any of them ended."""
    times = spans(done)
    return max(start for start, _ in times) < min(end for _, end in times)


def overlapping(done: list[TaskFinished]) -> int:
    """How many tasks started before the one that started before them ended."""
    return sum(1 for before, after in pairwise(spans(done)) if after[0] < before[1])


def test_the_workers_heartbeats_say_how_many_slots_rest(turns: tuple[str, Worker, CeleryExecutor]) -> None:
    _, worker, executor = turns
    executor.take_worker_heartbeats()
    wait_until(
        lambda: any(w.worker_id == worker.id and w.resting == 2 for w in executor.take_worker_heartbeats()),
        10,
        "a heartbeat of an idle worker: 1 of its 3 slots consumes, 2 rest",
    )


def test_short_computing_tasks_run_one_at_a_time_on_one_cpu(
    turns: tuple[str, Worker, CeleryExecutor], dag: Dag
) -> None:
    queue, _, executor = turns
    overlaps = overlapping(run_all(executor, [dag.request("crunch", queue=queue) for _ in range(12)]))
    assert overlaps <= 2, (
        f"{overlaps} of 12 one-per-message 30-ms computations ran beside another on one CPU: more "
        "than one slot consumed (a busy machine may hold one up for a whole time slice, so it hands over)"
    )


def test_waiting_tasks_hand_their_place_over_and_run_side_by_side(
    turns: tuple[str, Worker, CeleryExecutor], dag: Dag
) -> None:
    queue, _, executor = turns
    done = run_all(executor, [dag.request("doze", queue=queue) for _ in range(3)])
    assert all_at_once(done), f"three 2-second sleeps on three slots did not overlap: {spans(done)}"


def test_a_long_computing_task_gives_the_next_one_a_slot_after_its_time_slice(
    turns: tuple[str, Worker, CeleryExecutor], dag: Dag
) -> None:
    queue, _, executor = turns
    done = run_all(executor, [dag.request("spin", queue=queue) for _ in range(2)])
    assert all_at_once(done), f"the second 1-second computation waited for the first: {spans(done)}"


def test_many_handovers_run_each_task_once(
    turns: tuple[str, Worker, CeleryExecutor], dag: Dag, root: Path
) -> None:
    queue, worker, executor = turns
    requests = [dag.request("blink", queue=queue) for _ in range(40)]
    run_all(executor, requests)
    runs = [(root / "marks" / f"{r.run_id}.blink").read_text().split() for r in requests]
    assert all(tries == ["1"] for tries in runs), f"a task ran twice or not at all: {runs}"
    assert "Requeuing" not in worker.output(), "a message reached a slot that had stopped consuming"


def test_a_worker_whose_slots_do_not_take_turns_runs_short_tasks_side_by_side(
    broker: str, root: Path, dag: Dag
) -> None:
    with one_cpu(broker, root, dag, {"ZONDA_CELERY_SLOTS_TAKE_TURNS": "false"}) as (queue, _, executor):
        overlaps = overlapping(run_all(executor, [dag.request("crunch", queue=queue) for _ in range(12)]))
    assert overlaps >= 6, f"every slot consumes, so most of 12 short tasks overlap; {overlaps} did"


def test_a_heartbeat_asked_for_soon_comes_before_its_interval(broker: str) -> None:
    """A worker whose resting slot starts consuming tells schedulers at once, not at its next beat:
    they publish by the slots that take tasks."""
    executor = make_executor(broker)
    sender = HeartbeatSender(
        make_app(Settings(broker_url=broker)), unique("w") + "@test", ["q"], 3, 30.0, list, worker_keys()
    )
    sender.start()
    try:
        wait_until(lambda: bool(executor.take_worker_heartbeats()), 10, "the first heartbeat")
        asked = time.monotonic()
        sender.soon()
        wait_until(lambda: bool(executor.take_worker_heartbeats()), 5, "the heartbeat asked for")
        assert time.monotonic() - asked < 5 < sender.interval
    finally:
        sender.stop()
        executor.stop()
