"""Scale-out with real processes: API, DAG processor, two schedulers and Celery workers over one
PostgreSQL DB, on Redis and on RabbitMQ. Side effects the tasks record prove exactly-once runs."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import text

from tests.integration.celery_helpers import BROKERS, collect, rabbitmq_vhost, sealer, unique, worker_keys
from tests.integration.cluster import Cluster, assert_each_task_ran_once, celery_cluster, owners
from tests.integration.server import free_port
from tests.services import drop_pg_database, fresh_pg_database
from zonda.db.engine import make_engine
from zonda.executors.celery.app import make_app
from zonda.executors.celery.codec import seal_report
from zonda.executors.celery.events import publish_report, reply_queue_name
from zonda.executors.celery.executor import CeleryExecutor
from zonda.settings import Settings
from zonda.worker.protocol import TaskFinished

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def cluster(broker: str, pg_server: str, tmp_path: Path) -> Iterator[Cluster]:
    url, name = fresh_pg_database(pg_server)
    c = celery_cluster(broker, url, tmp_path)
    yield c
    c.stop()
    drop_pg_database(pg_server, name)


def wait_all(cluster: Cluster, run_ids: list[str], timeout: float = 120) -> list[dict[str, Any]]:
    """Every run's record once all ended; on timeout, fail naming the tasks that did not end."""
    ended = ("success", "failed")
    try:
        cluster.wait_until(
            lambda: all(cluster.run(r)["state"] in ended for r in run_ids), timeout, "runs end"
        )
    except AssertionError:
        stuck = [
            (r, t["task_id"], t["state"], t["try_number"])
            for r in run_ids
            for t in cluster.run(r)["tasks"]
            if t["state"] not in ("success", "failed", "upstream_failed", "skipped")
        ]
        raise AssertionError(f"runs did not end; unfinished tasks: {stuck[:10]}") from None
    return [cluster.run(r) for r in run_ids]


def successes(cluster: Cluster, run_ids: list[str]) -> int:
    return sum(t["state"] == "success" for r in run_ids for t in cluster.run(r)["tasks"])


def test_w1_shaped_runs_complete_on_celery_workers(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start(expect_dags=13, schedulers=2)
    cluster.start_worker("w0")
    cluster.start_worker("w1")
    run_ids = [cluster.trigger("w1_shape", {"user_id": i}, key=f"user-{i}") for i in range(6)]
    records = wait_all(cluster, run_ids)
    assert [r["state"] for r in records] == ["success"] * 6
    assert_each_task_ran_once(records, tmp_path / "marks")

    cluster.wait_workers_listed("w0", "w1", timeout=30)
    log = cluster.log(run_ids[0], "s7_0")
    assert "--- success ---" in log or log == ""


def test_killing_a_scheduler_mid_run_loses_and_repeats_nothing(cluster: Cluster, tmp_path: Path) -> None:
    # The survivor queues again the dead scheduler's queued tasks that do not start within this
    # of the takeover: those it held in its backlog, or had stored as queued but not published.
    cluster.env["ZONDA_QUEUED_TIMEOUT"] = "20"
    cluster.start(expect_dags=13, schedulers=2)
    cluster.start_worker("w0")
    cluster.start_worker("w1")
    cluster.wait_workers_listed("w0", "w1")  # the kill lands mid-run, not while slots start
    run_ids = [cluster.trigger("w1_shape", {"user_id": i, "pause": 0.05}) for i in range(6)]
    cluster.wait_until(lambda: successes(cluster, run_ids) >= 40, 60, "a sixth of the tasks done")
    (holder,) = set(owners(cluster.db_url, run_ids).values()) - {None}  # one scheduler serves the DAG
    cluster.kill(cluster.process_of(holder))
    records = wait_all(cluster, run_ids)
    assert [r["state"] for r in records] == ["success"] * 6
    assert_each_task_ran_once(records, tmp_path / "marks")


def test_what_a_scheduler_sent_before_its_commit_runs_once_after_it_is_killed(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A scheduler sends a task's request before its queued state commits, while the run's lease was
    renewed within half its length. Here its commits wait on a lock held on the run's row: its
    workers run tasks the DB never hears of, until half a lease after its last commit; it then
    waits for its commit before sending. Killed then, its successor holds the run's next attempts
    back until each reports or its queue shows that no request sent before the takeover is still
    to come: every task runs once (it must not send again what the dead one sent)."""
    cluster.env.update({"ZONDA_SCHEDULER_LEASE_SECONDS": "3", "ZONDA_QUEUED_TIMEOUT": "2"})
    cluster.start(expect_dags=13, schedulers=2)
    cluster.start_worker("w0")
    cluster.wait_workers_listed("w0")
    run_id = cluster.trigger("w1_shape", {"pause": 0.3})
    cluster.wait_until(lambda: successes(cluster, [run_id]) >= 5, 60, "the first stage done")
    marks = tmp_path / "marks"

    def ran() -> int:
        return len(list(marks.glob(f"{run_id}.*")))

    with row_locked(cluster.db_url, run_id):
        before = ran()
        cluster.wait_until(lambda: ran() >= before + 5, 10, "tasks run while the commit waits")
        time.sleep(2.5)  # past half the lease since the last commit, and the tasks sent by then
        sent_while_fresh = ran()
        time.sleep(1)
        assert ran() == sent_while_fresh < 40, "nothing is sent once the lease is not fresh"
        (holder,) = set(owners(cluster.db_url, [run_id]).values())
        assert holder is not None
        cluster.kill(cluster.process_of(holder))
        unstored = ran() - successes(cluster, [run_id])
    record = wait_all(cluster, [run_id])[0]
    assert record["state"] == "success"
    assert_each_task_ran_once([record], marks)
    assert unstored >= 5, "tasks ran that the dead scheduler never stored as ended"


@contextmanager
def row_locked(db_url: str, run_id: str) -> Iterator[None]:
    """Hold a lock on a run's row: every write that renews the run's lease waits for it."""
    engine = make_engine(db_url)
    with engine.connect() as conn:
        txn = conn.begin()
        conn.execute(text("SELECT 1 FROM runs WHERE run_id = :run FOR UPDATE"), {"run": run_id})
        try:
            yield
        finally:
            txn.rollback()
    engine.dispose()


def test_a_scheduler_cut_off_from_the_broker_hands_its_runs_over(
    cluster: Cluster, broker: str, tmp_path: Path
) -> None:
    """A scheduler that loses its route to the broker (the DB still answers) lets its leases run
    out; the other takes its runs over and finishes them, each task once."""
    cluster.env["ZONDA_SCHEDULER_LEASE_SECONDS"] = "3"  # taken over within about 4 s
    cluster.env["ZONDA_QUEUED_TIMEOUT"] = "5"  # what it queued but could not publish goes again soon
    target = urlsplit(broker)
    with CuttableProxy(target.hostname or "127.0.0.1", target.port or 0) as proxy:
        proxied = urlunsplit(
            target._replace(netloc=target.netloc.replace(f":{target.port}", f":{proxy.port}"))
        )
        cluster.start(expect_dags=13, schedulers=0)
        cluster.start_process("scheduler-cut", "scheduler", env={**cluster.env, "ZONDA_BROKER_URL": proxied})
        cluster.start_worker("w0")
        cluster.wait_workers_listed("w0")
        run_ids = [cluster.trigger("w1_shape", {"user_id": i, "pause": 0.3}) for i in range(4)]
        cluster.wait_until(lambda: successes(cluster, run_ids) >= 8, 60, "some tasks done")
        cluster.start_process("scheduler-1", "scheduler")
        cluster.wait_until(
            lambda: cluster.client.get("/health").json()["schedulers"] >= 2, 60, "2 schedulers"
        )
        under_way = [r for r in run_ids if cluster.run(r)["state"] not in ("success", "failed")]
        cut_off = {owners(cluster.db_url, under_way)[r] for r in under_way}
        proxy.cut()
        records = wait_all(cluster, run_ids)
    assert [r["state"] for r in records] == ["success"] * 4
    assert_each_task_ran_once(records, tmp_path / "marks")
    assert under_way and len(cut_off) == 1, "the cut-off scheduler held every run under way"
    # A run may still end with it, from outcomes it took just before the cut, within its lease.
    assert set(owners(cluster.db_url, under_way).values()) - cut_off, "the other one took runs over"


class CuttableProxy:
    """A TCP proxy to a broker on a free local port; `cut()` closes its connections and refuses
    new ones, as a network partition between one scheduler and the broker would."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> CuttableProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()

    def cut(self) -> None:
        self.closed.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept(); close() alone does not
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.closed.is_set():
                client.close()
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def test_a_report_sent_to_a_scheduler_frozen_then_killed_reaches_its_successor(broker: str) -> None:
    """The broker may hand a report to a consumer that never reads it (frozen, then killed: on a
    busy machine a scheduler is often descheduled for milliseconds). It must not be lost."""
    dead_id = unique("dead")
    crashing = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.celery_crashing_scheduler", broker, dead_id],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    now = datetime.now(UTC)
    report = TaskFinished(unique("run"), "t", -1, 1, ok=True, started_at=now, ended_at=now, worker="w@h")
    app = make_app(Settings(broker_url=broker))
    try:
        assert crashing.stdout is not None and crashing.stdout.readline().strip() == "CONSUMING"
        time.sleep(0.5)  # its consumer is waiting for reports
        crashing.send_signal(signal.SIGSTOP)
        with app.producer_or_acquire() as producer:
            publish_report(producer, reply_queue_name(dead_id), seal_report(report, worker_keys()))
        time.sleep(0.5)  # the broker hands the report to the frozen consumer, if it takes it that way
    finally:
        crashing.kill()
        crashing.wait(10)
    successor = CeleryExecutor(make_app(Settings(broker_url=broker)), unique("sched"), sealer=sealer())
    successor.start()
    try:
        successor.follow(dead_id)
        assert collect(successor, bool, timeout=10) == [report]
    finally:
        successor.stop()


def test_a_task_on_a_killed_worker_is_retried_on_another(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start(expect_dags=13, schedulers=1)
    cluster.start_worker("w0", concurrency=1)
    cluster.start_worker("w1", concurrency=1)
    run_id = cluster.trigger("worker_loss")
    cluster.wait_until(lambda: _running_on(cluster, run_id) is not None, 30, "the task running on a worker")
    victim = _running_on(cluster, run_id)
    assert victim is not None
    cluster.kill(victim)
    record = cluster.wait_run(run_id, timeout=60)
    assert record["state"] == "success"
    assert record["tasks"][0]["try_number"] == 2
    tries = (tmp_path / "marks" / f"{run_id}.long_first_try").read_text().split()
    assert tries == ["1", "2"], "the lost first try ran once, then the retry once"


@pytest.mark.parametrize("kind", BROKERS)
def test_runs_finish_after_the_broker_restarts(
    kind: str, pg_server: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with restartable_broker(kind, tmp_path, request) as (broker_url, restart):
        url, name = fresh_pg_database(pg_server)
        c = celery_cluster(broker_url, url, tmp_path)
        c.env["ZONDA_QUEUED_TIMEOUT"] = "8"  # a message the restart swallowed is queued again soon
        try:
            c.start(expect_dags=13, schedulers=1)
            c.start_worker("w0")
            run_ids = [c.trigger("w1_shape", {"user_id": i, "pause": 0.05}) for i in range(3)]
            c.wait_until(lambda: successes(c, run_ids) >= 10, 60, "some tasks done")
            restart()
            records = wait_all(c, run_ids)
            assert [r["state"] for r in records] == ["success"] * 3
        finally:
            c.stop()
            drop_pg_database(pg_server, name)


def test_runs_finish_after_redis_restarts_without_its_data(pg_server: str, tmp_path: Path) -> None:
    """A Redis without persistence loses every message at a restart: tasks that waited on it are
    queued again once their workers stand idle, and attempts whose outcome it lost are reported
    lost and retried (each task of w1_shape has two retries)."""
    with own_redis(tmp_path, persist=False) as redis:
        url, name = fresh_pg_database(pg_server)
        c = celery_cluster(redis.url, url, tmp_path)
        c.env["ZONDA_QUEUED_TIMEOUT"] = "8"
        try:
            c.start(expect_dags=13, schedulers=1)
            c.start_worker("w0")
            run_ids = [c.trigger("w1_shape", {"user_id": i, "pause": 0.05}) for i in range(3)]
            c.wait_until(lambda: successes(c, run_ids) >= 10, 60, "some tasks done")
            redis.restart()
            records = wait_all(c, run_ids)
            assert [r["state"] for r in records] == ["success"] * 3
        finally:
            c.stop()
            drop_pg_database(pg_server, name)


@contextmanager
def restartable_broker(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[str, Callable[[], None]]]:
    """A broker and a function that stops it for two seconds and starts it again (data kept)."""
    if kind == "redis":
        with own_redis(tmp_path) as redis:
            yield redis.url, redis.restart
        return
    with rabbitmq_vhost(request.getfixturevalue("amqp_url")) as url:
        yield url, restart_rabbitmq


def restart_rabbitmq() -> None:
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=60)
    time.sleep(2)
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)


def _running_on(cluster: Cluster, run_id: str) -> str | None:
    for worker in cluster.client.get("/api/v1/workers").json():
        if any(r["run_id"] == run_id for r in worker["running"]):
            return str(worker["worker_id"]).removeprefix("celery@")
    return None


class own_redis:
    """A Redis server of this test's own, which `restart` stops for two seconds and starts again:
    with its data kept on disk (`persist`), or with none, as a Redis without persistence restarts."""

    def __init__(self, tmp_path: Path, persist: bool = True) -> None:
        self.port = free_port()
        self.dir = tmp_path / "redis"
        self.dir.mkdir()
        self.persist = persist
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> own_redis:
        self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cli("shutdown", "nosave")

    def restart(self) -> None:
        self._cli("shutdown", *([] if self.persist else ["nosave"]))
        time.sleep(2)
        self._start()

    def _cli(self, *command: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["redis-cli", "-p", str(self.port), *command], capture_output=True, check=False)

    def _start(self) -> None:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
        )
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.dir),
                *persistence,
                "--save",
                "",
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            check=True,
        )
        for _ in range(50):
            if self._cli("ping").returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"redis on port {self.port} did not start")
