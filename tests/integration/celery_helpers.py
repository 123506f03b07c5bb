"""Helpers for Celery executor tests: real `zonda worker` processes, isolated brokers, test requests."""

from __future__ import annotations

import fcntl
import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from multiprocessing.connection import wait
from pathlib import Path

import pytest
import redis
from cryptography.fernet import Fernet

from tests.waiting import wait_until
from zonda.artifacts.store import output_path
from zonda.dag_processing.code_store import store_source
from zonda.executors.celery.app import make_app
from zonda.executors.celery.executor import CeleryExecutor
from zonda.executors.celery.sealing import SHARED, Sealer, WorkerKeys
from zonda.executors.celery.sealing import worker_keys as scope_keys
from zonda.settings import Settings
from zonda.worker.logs import log_path
from zonda.worker.protocol import TaskFinished, TaskRequest, WorkerMessage

ZONDA = str(Path(sys.executable).with_name("zonda"))
BROKERS = [
    pytest.param("redis", marks=pytest.mark.xdist_group("celery-redis")),
    pytest.param("rabbitmq", marks=pytest.mark.xdist_group("celery-rabbitmq")),
]
"""The brokers Celery tests run on. Each broker's tests run one after another on one xdist worker
(a test restarts the machine's RabbitMQ under the others), the two brokers' side by side."""

SERVER_KEY = os.environ.setdefault("ZONDA_TEST_SERVER_KEY", Fernet.generate_key().decode()).encode()
"""The tests' server key: executors seal task messages with it, `Worker`s get the keys derived from it
(through the environment, scripts the tests start use the same one)."""


def sealer(per_tenant: bool = False) -> Sealer:
    """What the tests' executors seal with: the shared scope, or each tenant's (ZONDA_TENANT_QUEUES)."""
    return Sealer([SERVER_KEY], per_tenant)


def worker_keys(scope: str = SHARED) -> WorkerKeys:
    """The keys a worker of `scope` gets (`zonda secrets worker-keys`), to seal reports as it would."""
    return WorkerKeys(scope_keys([SERVER_KEY], scope))


HEARTBEAT = 0.5
"""Heartbeat interval of test workers and executors (seconds): lost workers show up in ~2 s."""

DAG_SOURCE = """
import os
import signal
import time
from pathlib import Path

import zonda
from zonda import dag, task

MARKS = Path(os.environ["ZONDA_TEST_MARKS"])


def mark(name: str) -> None:
    ctx = zonda.context()
    MARKS.mkdir(parents=True, exist_ok=True)
    with (MARKS / f"{ctx.run_id}.{name}").open("a") as f:
        f.write(f"{ctx.try_number}\\n")


@task
def hello() -> str:
    print("hello from a celery worker")
    return "hi"


@task
def boom() -> None:
    raise ValueError("boom on purpose")


@task
def slow_first() -> str:
    mark("slow_first")
    if zonda.context().try_number == 1:
        time.sleep(60)
    return "second try"


@task
def die_first() -> str:
    mark("die_first")
    if zonda.context().try_number == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


@task
def nap() -> str:
    time.sleep(0.5)
    return "rested"


@task
def doze() -> str:
    time.sleep(2)
    return "awake"


@task
def niceness() -> int:
    return os.nice(0)


@task
def blink() -> str:
    mark("blink")
    time.sleep(0.05)
    return "blinked"


def compute(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@task
def crunch() -> str:
    compute(0.03)
    return "crunched"


@task
def spin() -> str:
    compute(1.0)
    return "spun"


@dag
def celery_dag() -> None:
    hello()
    boom()
    slow_first()
    die_first()
    nap()
    doze()
    niceness()
    blink()
    crunch()
    spin()
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@contextmanager
def redis_db(base: str) -> Iterator[str]:
    """`base` on a Redis db (1-15) that no other test on this machine holds, emptied first.

    Two tests on one db would share queues and heartbeats (one's worker running the other's
    tasks), so each db is held through an exclusive lock file while a test uses it.
    """
    for db in random.sample(range(1, 16), 15):
        with open(Path(tempfile.gettempdir()) / f"zonda-test-redis-db-{db}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            url = f"{base.rsplit('/', 1)[0]}/{db}"
            redis.Redis.from_url(url).flushdb()
            yield url
            return
    raise RuntimeError("all 15 Redis test dbs are held by other tests on this machine")


@contextmanager
def rabbitmq_vhost(base: str) -> Iterator[str]:
    """`base` on a fresh vhost (deleted afterwards); the default vhost if rabbitmqctl is not usable."""
    vhost = unique("zonda-test")
    try:
        subprocess.run(["rabbitmqctl", "add_vhost", vhost], check=True, capture_output=True, timeout=30)
        subprocess.run(
            ["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
            check=True,
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        yield base
        return
    try:
        yield f"{base.rstrip('/')}/{vhost}"
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], check=False, capture_output=True, timeout=30)


@contextmanager
def broker_namespace(request: pytest.FixtureRequest, kind: str) -> Iterator[str]:
    """A broker URL in a namespace of its own: a Redis db (`kind` "redis") or a RabbitMQ vhost."""
    if kind == "redis":
        with redis_db(request.getfixturevalue("redis_url")) as url:
            yield url
        return
    with rabbitmq_vhost(request.getfixturevalue("amqp_url")) as url:
        yield url


class Dag:
    """The test DAG's code in a code store, and requests for its tasks."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.digest = hashlib.sha256(DAG_SOURCE.encode()).hexdigest()
        self.code = store_source(root / "code", self.digest, DAG_SOURCE)

    def request(
        self, task_id: str, try_number: int = 1, queue: str = "default", run_id: str = ""
    ) -> TaskRequest:
        run_id = run_id or unique("run")
        return TaskRequest(
            run_id=run_id,
            dag_id="celery_dag",
            task_id=task_id,
            map_index=-1,
            try_number=try_number,
            dag_version=1,
            code_uri=str(self.code),
            code_hash=self.digest,
            fileloc="/dags/celery_dag.py",
            log_path=log_path(str(self.root / "logs"), "celery_dag", run_id, task_id, -1, try_number),
            output_path=output_path("celery_dag", run_id, task_id, -1, try_number),
            queue=queue,
        )


class Worker:
    """One `zonda worker` process (with its pool processes) in its own process group."""

    def __init__(
        self,
        broker: str,
        root: Path,
        queues: list[str],
        concurrency: int = 2,
        tenant: str | None = None,
        loglevel: str = "INFO",
        scope: str = SHARED,
        cpus: int | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        """`scope`: whose task messages it holds the keys of (`sealing.py`); `cpus`: run it on the
        machine's first `cpus` CPUs only (its CPU affinity, which the worker counts as its CPUs);
        `settings`: more of its environment (`ZONDA_*`)."""
        self.name = unique("w")
        self.id = f"{self.name}@test"
        self.log = root / f"{self.name}.out"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZONDA_")}
        env.update(
            ZONDA_BROKER_URL=broker,
            ZONDA_HOME=str(root / "home"),
            ZONDA_ARTIFACT_URL=str(root / "artifacts"),
            ZONDA_HEARTBEAT_INTERVAL=str(HEARTBEAT),
            ZONDA_TEST_MARKS=str(root / "marks"),
            ZONDA_WORKER_KEYS=scope_keys([SERVER_KEY], scope),
        )
        env.update(settings or {})
        args = [ZONDA, "worker", "--queues", ",".join(queues), "-c", str(concurrency), "--name", self.id]
        if cpus is not None:
            args = ["taskset", "--cpu-list", f"0-{cpus - 1}", *args]
        args += ["--loglevel", loglevel]
        args += ["--tenant", tenant] if tenant else []
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(args, env=env, stdout=out, stderr=out, start_new_session=True)
        wait_until(lambda: f"{self.id} ready" in self.output(), 30, f"worker {self.id} ready")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker's main process only (its pool processes die with it)."""
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        _kill_group(self.proc.pid)


def _kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def heard_from(executor: CeleryExecutor, worker: Worker, timeout: float = 10) -> None:
    """Wait until the executor has had a heartbeat of the worker: its slots then count on its queues."""
    wait_until(
        lambda: any(w.worker_id == worker.id for w in executor.take_worker_heartbeats()),
        timeout,
        f"a heartbeat of {worker.id}",
    )


def make_executor(broker: str, scheduler_id: str = "", **options: object) -> CeleryExecutor:
    """A started Celery executor with the tests' short heartbeats."""
    settings = Settings(broker_url=broker, heartbeat_interval=HEARTBEAT)
    executor = CeleryExecutor(
        make_app(settings),
        scheduler_id or unique("sched"),
        sealer=options.pop("sealer", sealer()),  # type: ignore[arg-type]
        heartbeat_interval=HEARTBEAT,
        **options,  # type: ignore[arg-type]
    )
    executor.start()
    return executor


def waiting(broker_url: str, queue: str) -> int:
    """Messages waiting in a broker queue (0 if it does not exist: Redis has no empty queues)."""
    with make_app(Settings(broker_url=broker_url)).connection_for_write() as conn:
        try:
            return int(conn.default_channel.queue_declare(queue, passive=True).message_count)
        except conn.channel_errors:
            return 0


def collect(
    executor: CeleryExecutor,
    until: Callable[[list[WorkerMessage]], bool],
    timeout: float = 15.0,
    store: bool = True,
) -> list[WorkerMessage]:
    """Drive the executor like the scheduler loop (wait, poll, checkpoint if `store`) until `until(messages)`."""
    messages: list[WorkerMessage] = []
    deadline = time.monotonic() + timeout
    while not until(messages):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s; got {messages}")
        wait(list(executor.waitables()), 0.2)
        messages.extend(executor.poll())
        if store:
            executor.checkpoint(executor.epoch)
    return messages


def finished(messages: list[WorkerMessage], task_id: str | None = None) -> list[TaskFinished]:
    return [m for m in messages if isinstance(m, TaskFinished) and (task_id is None or m.task_id == task_id)]
