"""The Celery executor with real `zonda worker` processes, on Redis and on RabbitMQ.

Each module run gets its own broker namespace (a Redis db number, a RabbitMQ vhost); each test
uses its own queue names and scheduler ids. Heartbeats every 0.5 s keep lost-worker tests short.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.identity import admin_token
from tests.integration.celery_helpers import (
    BROKERS,
    HEARTBEAT,
    Dag,
    Worker,
    broker_namespace,
    collect,
    finished,
    heard_from,
    make_executor,
    sealer,
    unique,
    waiting,
    worker_keys,
)
from tests.waiting import wait_until
from zonda.api.app import create_app
from zonda.artifacts.store import ArtifactStore
from zonda.db.engine import write_txn
from zonda.db.workers import Worker as WorkerRow
from zonda.db.workers import record_heartbeats
from zonda.executors.celery.app import make_app
from zonda.executors.celery.backlog import PACE_RUNS
from zonda.executors.celery.codec import encode, seal_report
from zonda.executors.celery.cpus import usable_cpus
from zonda.executors.celery.events import (
    HEARTBEAT_EXCHANGE,
    RunningTask,
    WorkerHeartbeat,
    publish_heartbeat,
    publish_report,
    running_task,
)
from zonda.executors.celery.executor import CeleryExecutor, celery_task_id
from zonda.executors.celery.routing import tenant_queue
from zonda.executors.celery.sealing import tenant_scope
from zonda.scheduler.wakeup import NullWaker
from zonda.settings import Settings
from zonda.worker.protocol import TaskFinished, TaskRequest, TaskStarted

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=BROKERS)
def broker(request: pytest.FixtureRequest) -> Iterator[str]:
    """A broker URL in a namespace of its own, on Redis and on RabbitMQ, shared by this module's tests."""
    with broker_namespace(request, request.param) as url:
        yield url


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("celery")


@pytest.fixture(scope="module")
def dag(root: Path) -> Dag:
    return Dag(root)


@pytest.fixture(scope="module")
def queues() -> dict[str, str]:
    return {"default": unique("default"), "gpu": unique("gpu")}


@pytest.fixture(scope="module")
def workers(broker: str, root: Path, queues: dict[str, str]) -> Iterator[dict[str, Worker]]:
    """One worker on the default queue, one on the gpu queue only, shared by this module's tests."""
    started = {name: Worker(broker, root, [queue]) for name, queue in queues.items()}
    yield started
    for worker in started.values():
        worker.stop()


def test_outcomes_arrive_within_milliseconds_with_logs_and_errors(
    executor: CeleryExecutor, workers: dict[str, Worker], dag: Dag, root: Path, queues: dict[str, str]
) -> None:
    collect(executor, lambda m: True, timeout=1)  # warm up: connections and declarations
    ok, bad = dag.request("hello", queue=queues["default"]), dag.request("boom", queue=queues["default"])
    sent = time.monotonic()
    executor.submit([ok])
    executor.submit([bad])
    messages = collect(executor, lambda m: len(finished(m)) == 2)
    took = time.monotonic() - sent

    assert took < 1.0, f"two tasks took {took:.3f} s from submit to both outcomes"
    hello, boom = finished(messages, "hello")[0], finished(messages, "boom")[0]
    assert hello.ok and hello.output is not None and hello.worker == workers["default"].id
    assert ArtifactStore(str(root / "artifacts")).load(hello.output) == "hi"
    assert not boom.ok and boom.error == "ValueError: boom on purpose"
    # A start is reported only for attempts still running after 20 ms (e.g. the first one in a
    # fresh pool process, which imports the DAG); the end always carries the start time.
    started = [m for m in messages if isinstance(m, TaskStarted)]
    assert all(m.worker == workers["default"].id for m in started)
    assert hello.started_at <= hello.ended_at and boom.worker == workers["default"].id
    assert "hello from a celery worker" in Path(ok.log_path).read_text()
    assert "ValueError: boom on purpose" in Path(bad.log_path).read_text()
    assert executor.free_slots() == executor.max_in_flight


def test_slots_run_tasks_below_the_workers_priority(
    executor: CeleryExecutor, workers: dict[str, Worker], dag: Dag, root: Path, queues: dict[str, str]
) -> None:
    """Slots run task code at the niceness of local workers (`ZONDA_WORKER_NICE`, 10 by default):
    busy tasks do not hold up the worker's heartbeats, nor a scheduler on the same machine."""
    executor.submit([dag.request("niceness", queue=queues["default"])])
    [outcome] = finished(collect(executor, lambda m: len(finished(m)) == 1))
    assert outcome.ok and outcome.output is not None, outcome.error
    assert ArtifactStore(str(root / "artifacts")).load(outcome.output) == min(19, os.nice(0) + 10)


def test_a_worker_that_does_not_see_the_code_store_says_so(
    executor: CeleryExecutor, workers: dict[str, Worker], dag: Dag, root: Path, queues: dict[str, str]
) -> None:
    elsewhere = str(root / "another-machines-home" / "code" / "greet.py")
    lost_code = replace(dag.request("hello", queue=queues["default"]), code_uri=elsewhere, code_hash="0" * 64)
    executor.submit([lost_code])  # a version this worker never loaded
    [outcome] = finished(collect(executor, lambda m: len(finished(m)) == 1))
    assert not outcome.ok
    assert outcome.error == (
        f"ConfigError: the code of celery_dag version 1 is not at {elsewhere}: this worker must see the "
        "code store the DAG processor writes (ZONDA_HOME/code on storage they share)"
    )


def test_tasks_go_to_the_workers_of_their_queue(
    executor: CeleryExecutor, workers: dict[str, Worker], dag: Dag, queues: dict[str, str]
) -> None:
    for queue in ("gpu", "default", "gpu", "default", "gpu"):
        executor.submit([dag.request("hello", queue=queues[queue])])
    messages = collect(executor, lambda m: len(finished(m)) == 5)
    by_queue = {m.run_id: m.worker for m in finished(messages) if m.ok}  # every request has its own run id
    assert len(by_queue) == 5
    assert sorted(by_queue.values()).count(workers["gpu"].id) == 3
    assert sorted(by_queue.values()).count(workers["default"].id) == 2


def test_a_new_scheduler_follows_the_reply_queue_of_a_dead_one(
    broker: str, workers: dict[str, Worker], dag: Dag, queues: dict[str, str]
) -> None:
    dead_id = unique("dead")
    polled = dag.request("hello", queue=queues["default"])
    crashing = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.celery_crashing_scheduler", broker, dead_id,
         json.dumps(encode(polled))],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert crashing.stdout is not None and crashing.stdout.readline().strip() == "POLLED"
    finally:
        crashing.kill()  # it polled the outcome but died before storing it: not acknowledged
        crashing.wait(10)
    later = dag.request("nap", queue=queues["default"])
    publisher = CeleryExecutor(make_app(Settings(broker_url=broker)), dead_id, sealer=sealer())  # not started
    publisher.submit([later])  # the worker reports to the dead scheduler's queue while nobody consumes it

    successor = make_executor(broker)
    try:
        assert successor.follow(dead_id) == []
        wanted = {polled.run_id, later.run_id}
        messages = collect(successor, lambda m: {f.run_id for f in finished(m)} >= wanted, timeout=10)
    finally:
        successor.stop()
    assert all(f.ok for f in finished(messages))


def test_a_report_can_be_forwarded_to_the_scheduler_that_holds_its_run(
    executor: CeleryExecutor, broker: str
) -> None:
    now = datetime.now(UTC)
    report = TaskFinished("r9", "t", -1, 1, ok=True, started_at=now, ended_at=now, worker="w@h")
    holder = make_executor(broker)
    try:
        executor.forward(report, holder.scheduler_id)
        assert collect(holder, bool, timeout=5) == [report]
    finally:
        holder.stop()


def test_a_killed_worker_is_reported_lost_and_the_next_try_runs_on_another(
    executor: CeleryExecutor, broker: str, root: Path, dag: Dag
) -> None:
    queue = unique("shared")
    first = Worker(broker, root, [queue], concurrency=1)
    second: Worker | None = None
    try:
        request = dag.request("slow_first", queue=queue)
        executor.submit([request])
        collect(executor, lambda m: any(isinstance(x, TaskStarted) for x in m))
        second = Worker(broker, root, [queue], concurrency=1)
        first.kill()
        killed = time.monotonic()
        messages = collect(executor, lambda m: len(finished(m)) >= 1, timeout=10)
        lost = finished(messages)[0]
        assert time.monotonic() - killed < 6 * HEARTBEAT + 2
        assert (lost.task_id, lost.try_number, lost.ok) == ("slow_first", 1, False)
        assert lost.error is not None and lost.error.startswith("WorkerLostError: ")
        assert executor.free_slots() == executor.max_in_flight

        retry = dag.request("slow_first", try_number=2, queue=queue, run_id=request.run_id)
        executor.submit([retry])
        messages = collect(executor, lambda m: any(f.try_number == 2 for f in finished(m)))
        outcome = next(f for f in finished(messages) if f.try_number == 2)
        assert outcome.ok and outcome.worker == second.id
        tries = (root / "marks" / f"{request.run_id}.slow_first").read_text().split()
        assert tries == ["1", "2"], "the first try must not run again after its worker died"
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_a_dead_pool_process_is_reported_and_the_worker_goes_on(
    executor: CeleryExecutor, workers: dict[str, Worker], dag: Dag, queues: dict[str, str]
) -> None:
    request = dag.request("die_first", queue=queues["default"])
    executor.submit([request])
    lost = finished(collect(executor, lambda m: len(finished(m)) == 1))[0]
    assert not lost.ok and lost.error is not None and lost.error.startswith("WorkerLostError: ")
    assert lost.worker == workers["default"].id

    executor.submit([dag.request("die_first", try_number=2, queue=queues["default"], run_id=request.run_id)])
    again = finished(collect(executor, lambda m: len(finished(m)) == 1))[0]
    assert again.ok and again.try_number == 2


def test_worker_heartbeats_are_listed_by_the_api(
    broker: str, workers: dict[str, Worker], engine: Engine, queues: dict[str, str]
) -> None:
    def record(beats: list[WorkerRow]) -> None:
        with write_txn(engine) as conn:
            record_heartbeats(conn, beats)

    executor = make_executor(broker, on_worker_heartbeats=record)
    try:
        settings = Settings(heartbeat_interval=HEARTBEAT)
        client = TestClient(create_app(settings, engine=engine, waker=NullWaker()))
        client.headers["Authorization"] = f"Bearer {admin_token(engine, settings)}"
        ids = {w.id for w in workers.values()}
        deadline = time.monotonic() + 10
        listed: dict[str, dict[str, object]] = {}
        while not ids <= set(listed) and time.monotonic() < deadline:
            time.sleep(0.2)
            listed = {w["worker_id"]: w for w in client.get("/api/v1/workers").json()}
    finally:
        executor.stop()
    assert ids <= set(listed)
    gpu = listed[workers["gpu"].id]
    assert gpu["queues"] == [queues["gpu"]]
    assert gpu["concurrency"] == 2 and gpu["alive"] is True and gpu["running"] == []
    assert gpu["cpus"] == usable_cpus(), "the CPUs its slots share, from its heartbeat"
    assert datetime.fromisoformat(str(gpu["heartbeat_at"]).replace("Z", "+00:00")) <= datetime.now(UTC)


def test_kill_reports_the_reason_at_once_and_stops_the_attempt(
    executor: CeleryExecutor, workers: dict[str, Worker], dag: Dag, root: Path, queues: dict[str, str]
) -> None:
    request = dag.request("slow_first", queue=queues["default"])
    executor.submit([request])
    collect(executor, lambda m: any(isinstance(x, TaskStarted) for x in m))
    executor.kill(request.ti_key, "TaskTimeoutError: killed past its deadline")
    [killed] = finished(collect(executor, lambda m: len(finished(m)) == 1, timeout=1))
    assert (killed.ok, killed.error) == (False, "TaskTimeoutError: killed past its deadline")
    assert executor.free_slots() == executor.max_in_flight

    quiet_until = time.monotonic() + 6 * HEARTBEAT  # no second report: not from the worker, not "lost"
    late = collect(executor, lambda m: bool(m) or time.monotonic() > quiet_until, timeout=10)
    assert late == []
    output = workers["default"].output()
    assert f"Terminating {celery_task_id(request)}" in output
    assert "Failed to mark" not in output, "a revoke warns on no slot that it cannot store a state"
    executor.submit([dag.request("hello", queue=queues["default"])])
    assert finished(collect(executor, lambda m: len(finished(m)) == 1))[0].ok  # the worker goes on


def test_a_tenant_worker_refuses_another_tenants_task_without_running_it(
    executor: CeleryExecutor, broker: str, root: Path, dag: Dag
) -> None:
    queue = unique("tenantq")
    worker = Worker(broker, root, [queue], concurrency=1, tenant="team-a")
    try:
        misrouted = replace(dag.request("hello", queue=f"team-a.{queue}"), dag_id="team-b/celery_dag")
        executor.submit([misrouted])
        [outcome] = finished(collect(executor, lambda m: len(finished(m)) == 1))
    finally:
        worker.stop()
    assert not outcome.ok and outcome.worker == worker.id
    assert outcome.error is not None and outcome.error.startswith("WorkerRefused: ")
    assert "serves tenant team-a only" in outcome.error and "tenant team-b" in outcome.error
    assert not Path(misrouted.log_path).exists(), "the task did not run"


def test_with_tenant_queues_a_tenants_worker_cannot_open_another_tenants_task_message(
    broker: str, root: Path, dag: Dag, caplog: pytest.LogCaptureFixture
) -> None:
    queue = unique("tenantq")
    worker = Worker(broker, root, [queue], concurrency=1, tenant="team-a", scope=tenant_scope("team-a"))
    executor = make_executor(broker, sealer=sealer(per_tenant=True))
    try:
        own = replace(dag.request("hello", queue=f"team-a.{queue}"), dag_id="team-a/celery_dag")
        misrouted = replace(dag.request("hello", queue=f"team-a.{queue}"), dag_id="team-b/celery_dag")
        executor.submit([own, misrouted])
        outcomes = {m.run_id: m for m in finished(collect(executor, lambda m: len(finished(m)) == 2))}
    finally:
        executor.stop()
        worker.stop()
    assert outcomes[own.run_id].ok and Path(own.log_path).exists()
    refused = outcomes[misrouted.run_id]
    assert not refused.ok and refused.worker == worker.id
    assert refused.error is not None and refused.error.startswith(
        f"WorkerCannotOpen: worker {worker.id} did not run this task: SealError: "
    )
    assert (
        "scope 'tenant:team-b'" in refused.error
        and "zonda secrets worker-keys --tenant team-b" in refused.error
    )
    assert not Path(misrouted.log_path).exists(), "the task did not run"
    unvouched = [
        r.getMessage() for r in caplog.records if "claims what is not its tenant's" in r.getMessage()
    ]
    assert not [m for m in unvouched if own.run_id in m or f"team-a.{queue}" in m], "its own task and queue"


def test_a_report_sealed_by_another_tenants_worker_cannot_pass_for_a_success(broker: str, dag: Dag) -> None:
    executor = make_executor(broker, sealer=sealer(per_tenant=True))
    request = replace(dag.request("hello", queue=unique("nobody")), dag_id="team-b/celery_dag")
    now = datetime.now(UTC)
    forged = TaskFinished(*request.ti_key, request.try_number, ok=True, started_at=now, ended_at=now)
    failed = replace(forged, ok=False, error="WorkerCannotOpen: ...")
    app = make_app(Settings(broker_url=broker))

    def report(message: TaskFinished, tenant: str) -> None:
        """Publish `message` as a worker of `tenant`'s scope would."""
        with app.producer_or_acquire() as producer:
            sealed = seal_report(message, worker_keys(tenant_scope(tenant)))
            publish_report(producer, executor.reply_to, sealed)

    try:
        executor.submit([request])
        report(forged, "team-a")
        report(failed, "team-a")
        assert finished(collect(executor, lambda m: len(m) == 1)) == [failed], "a failure only"
        executor.submit([replace(request, try_number=2)])
        genuine = replace(forged, try_number=2)
        report(genuine, "team-b")
        assert finished(collect(executor, lambda m: len(m) == 1)) == [genuine]
    finally:
        executor.stop()


def test_task_messages_cross_the_broker_sealed(broker: str, dag: Dag) -> None:
    queue = unique("nobody")
    executor = make_executor(broker)
    secret = unique("hunter2")
    request = replace(
        dag.request("hello", queue=queue), secrets={"DB_PASSWORD": secret}, params={"customer": secret}
    )
    try:
        executor.submit([replace(request, api_token=f"zondarun_{secret}")])
        wait_until(lambda: waiting(broker, queue) == 1, 10, "the message on the broker")
    finally:
        executor.stop()
    with make_app(Settings(broker_url=broker)).connection_for_write() as conn:
        raw = conn.default_channel.basic_get(queue, no_ack=True).body
    text = raw if isinstance(raw, str) else raw.decode()
    assert request.run_id in text and "SealedTaskRequest" in text, "the attempt shows, for reports"
    assert secret not in text, "no secret, param or run token in clear"


def test_a_queue_of_long_tasks_keeps_none_waiting_on_the_broker_so_a_later_urgent_task_is_next(
    broker: str, root: Path, dag: Dag
) -> None:
    queue = unique("backlog")
    worker = Worker(broker, root, [queue], concurrency=1)
    executor = make_executor(broker)
    try:
        heard_from(executor, worker)
        prefix = unique("run")
        naps = [
            replace(dag.request("nap", queue=queue, run_id=f"{prefix}-{i}"), dag_id="team-a/celery_dag")
            for i in range(4)
        ]
        executor.submit(list(reversed(naps)))
        second_started = lambda m: any(isinstance(x, TaskStarted) and x.run_id == naps[1].run_id for x in m)  # noqa: E731
        messages = collect(executor, second_started, timeout=30)
        assert waiting(broker, queue) == 0, "one slot, half-second tasks: only the running one was published"
        assert executor.waiting_tasks() == {("team-a", queue): 2}, "the two held count as waiting"
        urgent = replace(dag.request("nap", queue=queue, run_id=f"{prefix}-urgent"), priority=5)
        executor.submit([urgent])
        messages += collect(executor, lambda m: len(finished(m)) == 4, timeout=30)
    finally:
        executor.stop()
        worker.stop()
    order = [m.run_id for m in finished(messages)]
    assert order.index(urgent.run_id) <= 2, (
        f"the urgent task waited behind more than the running one: {order}"
    )
    assert [r for r in order if r != urgent.run_id] == [r.run_id for r in naps], "older runs first"


RECEIVED = re.compile(r"Task zonda\.run_task\[([^\]]+)\] received")


@contextmanager
def one_slot(broker: str, root: Path, dag: Dag) -> Iterator[tuple[str, Worker, CeleryExecutor]]:
    """A queue with one `-c 1` worker that logs each message it receives, and an executor that puts
    up to 8 requests in a message once it has seen the pace of their tasks (`hello`, `nap` and
    `slow_first`'s quick second try ran, each alone in its message; up to two seconds' worth of
    them share one; `hello` ran once more than its pace counts, for the first task of a slot
    imports the DAG), and publishes the requests of a test together (up to 4 wait on the broker
    for the slot). Both stop on leaving."""
    queue = unique("bundles")
    worker = Worker(broker, root, [queue], concurrency=1, loglevel="DEBUG")
    executor = make_executor(broker, bundle_seconds=2.0, queued_seconds=10.0)
    try:
        heard_from(executor, worker)
        paced = [dag.request(task_id, queue=queue) for task_id in ("hello",) * (PACE_RUNS + 1) + ("nap",)]
        executor.submit([*paced, dag.request("slow_first", try_number=2, queue=queue)])
        collect(executor, lambda m: len(finished(m)) == len(paced) + 1)
        yield queue, worker, executor
    finally:
        executor.stop()
        worker.stop()


def in_order(dag: Dag, queue: str, *task_ids: str) -> list[TaskRequest]:
    """Requests of runs whose ids sort in this order (the backlog's: older runs first)."""
    prefix = unique("run")
    return [dag.request(task_id, queue=queue, run_id=f"{prefix}-{i}") for i, task_id in enumerate(task_ids)]


def test_short_tasks_published_together_share_messages_and_each_runs_once(
    broker: str, root: Path, dag: Dag
) -> None:
    with one_slot(broker, root, dag) as (queue, worker, executor):
        requests = [dag.request("hello", queue=queue) for _ in range(12)]
        executor.submit(requests)
        done = finished(collect(executor, lambda m: len(finished(m)) == 12))
    assert sorted(m.run_id for m in done) == sorted(r.run_id for r in requests) and all(m.ok for m in done)
    received = RECEIVED.findall(worker.output())
    bundled = [task_id for task_id in received if "+" in task_id]
    assert bundled, f"every message carried one request: {received}"
    assert len(received) < PACE_RUNS + 3 + 12, "fewer messages than requests"
    assert all(Path(r.log_path).read_text().count("hello from a celery worker") == 1 for r in requests)


def test_after_short_tasks_a_task_not_run_yet_gets_messages_of_its_own_and_its_attempts_run_side_by_side(
    broker: str, root: Path, dag: Dag
) -> None:
    """The queue's recent tasks were short; `nap` (half a second) has not run here yet: its four
    attempts, published together, must not share messages and run one after another."""
    queue = unique("mixed")
    worker = Worker(broker, root, [queue], concurrency=4, loglevel="DEBUG")
    executor = make_executor(broker, bundle_seconds=2.0)
    try:
        heard_from(executor, worker)
        executor.submit([dag.request("hello", queue=queue) for _ in range(8)])
        collect(executor, lambda m: len(finished(m)) == 8)
        naps = [dag.request("nap", queue=queue) for _ in range(4)]
        executor.submit(naps)
        done = finished(collect(executor, lambda m: len(finished(m)) == 4))
    finally:
        executor.stop()
        worker.stop()
    assert all(m.ok for m in done) and {m.run_id for m in done} == {r.run_id for r in naps}
    assert max(m.started_at for m in done) < min(m.ended_at for m in done), "the naps ran one after another"
    nap_ids = {celery_task_id(r) for r in naps}
    received = RECEIVED.findall(worker.output())
    assert nap_ids <= set(received), f"a nap shared a message (ids first+others): {received}"


def test_an_attempt_revoked_before_its_turn_in_a_message_is_skipped(
    broker: str, root: Path, dag: Dag
) -> None:
    with one_slot(broker, root, dag) as (queue, worker, executor):
        first, doomed, last = in_order(dag, queue, "nap", "hello", "hello")
        executor.submit([first, doomed, last])
        collect(executor, lambda m: any(isinstance(x, TaskStarted) and x.run_id == first.run_id for x in m))
        executor.kill(doomed.ti_key, "cancelled")
        messages = collect(executor, lambda m: len(finished(m)) == 3)
        quiet_until = time.monotonic() + 4 * HEARTBEAT  # no report of the skipped attempt's own
        messages += collect(executor, lambda m: time.monotonic() > quiet_until, timeout=10)
    outcomes = {m.run_id: (m.ok, m.error) for m in finished(messages)}
    assert outcomes == {
        first.run_id: (True, None),
        doomed.run_id: (False, "cancelled"),
        last.run_id: (True, None),
    }
    assert len(finished(messages)) == 3, "the skipped attempt reported nothing of its own"
    assert not Path(doomed.log_path).exists(), "the revoked attempt ran"
    assert any("+2" in task_id for task_id in RECEIVED.findall(worker.output())), "the three shared a message"


def test_killing_a_running_attempt_of_a_message_ends_its_slot_and_those_behind_it_do_not_run_there(
    broker: str, root: Path, dag: Dag
) -> None:
    with one_slot(broker, root, dag) as (queue, worker, executor):
        stuck, behind = in_order(dag, queue, "slow_first", "hello")
        executor.submit([stuck, behind])
        collect(executor, lambda m: any(isinstance(x, TaskStarted) and x.run_id == stuck.run_id for x in m))
        executor.kill(stuck.ti_key, "TaskTimeoutError: killed past its deadline")
        [killed] = finished(collect(executor, lambda m: len(finished(m)) == 1, timeout=1))
        assert (killed.ok, killed.error) == (False, "TaskTimeoutError: killed past its deadline")
        if broker.startswith("amqp"):
            # RabbitMQ delivers the dead slot's message again at once: what it still held is reported lost.
            [lost] = finished(collect(executor, lambda m: len(finished(m)) == 1, timeout=20))
            assert (lost.run_id, lost.ok) == (behind.run_id, False)
            assert lost.error is not None and lost.error.startswith("WorkerLostError")
        else:
            # Redis keeps it unacknowledged: the executor takes what it held as due, to be queued again.
            wait_until(
                lambda: executor.undelivered_for(behind.ti_key) > 0, 20, "the attempt behind taken as due"
            )
    assert (root / "marks" / f"{stuck.run_id}.slow_first").read_text() == "1\n", "the killed attempt ran once"
    assert not Path(behind.log_path).exists(), "the attempt behind the killed one ran"
    assert "Terminating" in worker.output()


@pytest.mark.parametrize("then_now", [False, True], ids=["warm", "then-SIGQUIT"])
def test_a_sigterm_to_the_workers_whole_group_lets_the_running_task_finish(
    broker: str, root: Path, dag: Dag, then_now: bool
) -> None:
    """systemd stops a unit by sending SIGTERM to each of its processes: the supervisor, the slots and
    the fork server the slots come from. The running task still ends as with SIGTERM to the supervisor;
    a SIGQUIT after it stops the task at once, reported lost."""
    queue = unique("stopping")
    worker = Worker(broker, root, [queue], concurrency=1)
    executor = make_executor(broker)
    try:
        executor.submit([dag.request("doze", queue=queue)])
        collect(executor, lambda m: any(isinstance(x, TaskStarted) for x in m))
        os.killpg(worker.proc.pid, signal.SIGTERM)
        if then_now:
            time.sleep(0.2)
            worker.proc.send_signal(signal.SIGQUIT)
        [outcome] = finished(collect(executor, lambda m: len(finished(m)) == 1, timeout=15))
        assert worker.proc.wait(15) == 0
    finally:
        executor.stop()
        worker.stop()
    if then_now:
        assert not outcome.ok and outcome.error is not None and outcome.error.startswith("WorkerLostError")
        assert outcome.ended_at - outcome.started_at < timedelta(seconds=1.5), "the task ran on"
    else:
        assert (outcome.ok, outcome.error) == (True, None)
        assert "WorkerLostError" not in worker.output()


@pytest.mark.skipif(os.geteuid() != 0, reason="the warning is about running as root")
def test_a_worker_run_as_root_warns_once_not_once_per_slot(workers: dict[str, Worker]) -> None:
    output = workers["default"].output()
    assert output.count("superuser privileges") == 1
    assert "SecurityWarning" not in output


def test_a_tenants_worker_cannot_vouch_for_another_tenants_task_nor_can_an_unsealed_heartbeat(
    broker: str, dag: Dag, caplog: pytest.LogCaptureFixture
) -> None:
    executor = make_executor(broker, sealer=sealer(per_tenant=True))
    own_queue, their_queue = tenant_queue("team-a", unique("q")), tenant_queue("team-b", unique("q"))
    theirs = replace(dag.request("hello", queue=their_queue), dag_id="team-b/celery_dag")
    own = RunningTask(unique("run"), "hello", -1, 1, "zonda.events.another-scheduler", "team-a/celery_dag")
    claims = WorkerHeartbeat(
        "celery@team-a-worker",
        "h",
        (own_queue, their_queue),
        4,
        (
            own,
            running_task(replace(theirs, reply_to=executor.reply_to)),
            running_task(replace(theirs, reply_to=executor.reply_to, dag_id="team-a/celery_dag")),
        ),
        datetime.now(UTC),
        datetime.now(UTC),
    )
    plain = replace(claims, worker_id="celery@unsealed")
    app = make_app(Settings(broker_url=broker))
    rows: dict[str, WorkerRow] = {}
    messages: list[object] = []

    def beat() -> None:
        """Publish both heartbeats: one as a team-a worker seals it, one in clear."""
        with app.producer_or_acquire() as producer:
            publish_heartbeat(producer, claims, worker_keys(tenant_scope("team-a")))
            producer.publish(plain.to_json(), exchange=HEARTBEAT_EXCHANGE, routing_key="", serializer="json")
        rows.update({row.worker_id: row for row in executor.take_worker_heartbeats()})
        messages.extend(executor.poll())

    try:
        executor.submit([theirs])  # on a queue no worker consumes: it waits there, never starting
        wait_until(lambda: beat() or "celery@team-a-worker" in rows, 10, "the sealed heartbeat")
        deadline = time.monotonic() + 4 * HEARTBEAT
        while time.monotonic() < deadline:  # a while of claims that team-b's attempt runs
            beat()
            time.sleep(HEARTBEAT / 2)
        time.sleep(4 * HEARTBEAT)  # the claims stop: an attempt they had shown running would be lost now
        messages.extend(executor.poll())
    finally:
        executor.stop()
    assert "celery@unsealed" not in rows
    vouched = rows["celery@team-a-worker"]
    assert vouched.queues == [own_queue]
    assert [r["run_id"] for r in vouched.running] == [own.run_id]
    assert messages == [], "team-b's queued task was never taken for one that started and was lost"
    warnings = [r.getMessage() for r in caplog.records if "claims what is not its tenant's" in r.getMessage()]
    assert len(warnings) == 1, "said once, not on every heartbeat"
    assert (
        "celery@team-a-worker" in warnings[0] and their_queue in warnings[0] and theirs.run_id in warnings[0]
    )
    assert own.run_id not in warnings[0]
