"""The Celery configurations: a fresh broker namespace (a flushed Redis db or a new RabbitMQ vhost,
cleaned afterwards) and `zonda worker` processes started beside the benchmark server.

The server and the workers share the artifact store and the task logs through folders under the
server's temp home; the workers never get the DB URL (they only talk to the broker).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from zonda.auth.keys import secret_keys
from zonda.executors.celery.sealing import SHARED, worker_keys
from zonda.settings import Settings

REDIS_BASE = os.environ.get("ZONDA_BENCH_REDIS", "redis://127.0.0.1:6379")
AMQP_BASE = os.environ.get("ZONDA_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672")
DEFAULT_REDIS_DB = 0
"""The test suite puts each Celery test on a random Redis db in 1-15 (tests/integration/celery_helpers.py),
so db 0 is the one a concurrent test session never uses."""
DEFAULT_PORTS = {"redis": 6379, "rabbitmq": 5672}
ZONDA = Path(sys.executable).with_name("zonda")
QUEUE = "default"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
RABBITMQCTL_TIMEOUT = 60.0


@dataclass(frozen=True)
class Broker:
    """A broker namespace of one benchmark configuration: kind (redis, rabbitmq), URL and version."""

    kind: str
    url: str
    version: str


@contextlib.contextmanager
def fresh_broker(kind: str, redis_db: int = DEFAULT_REDIS_DB) -> Iterator[Broker]:
    """A broker namespace nothing else uses, emptied before and removed (or emptied) afterwards."""
    if kind == "redis":
        with redis_database(redis_db) as broker:
            yield broker
    elif kind == "rabbitmq":
        with rabbitmq_vhost() as broker:
            yield broker
    else:
        raise ValueError(f"unknown broker {kind!r}")


@contextlib.contextmanager
def redis_database(db: int) -> Iterator[Broker]:
    """Redis db `db`, flushed before and after; refused if another client is connected to it."""
    url = f"{REDIS_BASE}/{db}"
    client = redis.Redis.from_url(url)
    try:
        own_id = str(client.client_id())
        others = [c for c in client.client_list() if c.get("db") == str(db) and c.get("id") != own_id]
        if others:
            addresses = sorted({str(c.get("addr")) for c in others})
            raise RuntimeError(
                f"Redis db {db} is in use by {len(others)} other client(s) ({', '.join(addresses[:5])}); "
                "pick another with --redis-db"
            )
        client.flushdb()
        version = str(client.info("server")["redis_version"])
        try:
            yield Broker("redis", url, f"Redis {version}")
        finally:
            client.flushdb()
    finally:
        client.close()


def rabbitmqctl(*args: str, check: bool = True) -> str:
    done = subprocess.run(
        ["rabbitmqctl", *args], check=check, capture_output=True, text=True, timeout=RABBITMQCTL_TIMEOUT
    )
    return done.stdout


@contextlib.contextmanager
def rabbitmq_vhost() -> Iterator[Broker]:
    """A new vhost `zonda-bench-*` for user guest; deleted afterwards (with its queues)."""
    vhost = f"zonda-bench-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        version = rabbitmqctl("version").strip()
        yield Broker("rabbitmq", f"{AMQP_BASE}/{vhost}", f"RabbitMQ {version}")
    finally:
        try:
            rabbitmqctl("delete_vhost", vhost)
        except (OSError, subprocess.SubprocessError) as error:
            print(f"  could not delete the RabbitMQ vhost {vhost}: {error}", file=sys.stderr, flush=True)


def shared_stores(home: Path) -> dict[str, str]:
    """Where the server and the workers both read and write artifacts and task logs."""
    return {
        "ZONDA_ARTIFACT_URL": str(home / "shared" / "artifacts"),
        "ZONDA_LOG_URL": str(home / "shared" / "logs"),
    }


def server_env(home: Path, broker_url: str) -> dict[str, str]:
    """Environment additions for the server of a Celery configuration."""
    return {"ZONDA_EXECUTOR": "celery", "ZONDA_BROKER_URL": broker_url, **shared_stores(home)}


def worker_env(home: Path, broker_url: str) -> dict[str, str]:
    """A worker's whole environment: no ZONDA_* from outside (so never ZONDA_DB_URL), the broker, the
    shared stores, a home folder of its own and the keys of the server's task messages."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZONDA_")}
    env.update(ZONDA_BROKER_URL=broker_url, ZONDA_HOME=str(home / "worker-home"), **shared_stores(home))
    env["ZONDA_WORKER_KEYS"] = worker_keys(secret_keys(Settings(home=home)), SHARED)
    return env


@dataclass
class Worker:
    """One `zonda worker` process (and its slot processes), in a process group of its own."""

    name: str
    concurrency: int
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def start_worker(
    home: Path, broker_url: str, name: str, concurrency: int, extra_env: dict[str, str] | None = None
) -> Worker:
    log = home / f"{name}.out"
    command = [str(ZONDA), "worker", "--queues", QUEUE, "-c", str(concurrency), "--name", name]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            env={**worker_env(home, broker_url), **(extra_env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Worker(name, concurrency, process, log)


def wait_ready(worker: Worker, timeout: float = READY_TIMEOUT) -> None:
    """Until the worker logs `celery@NAME ready.` (every slot is on the queue); RuntimeError otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise RuntimeError(
                f"worker {worker.name} exited with {worker.process.returncode}:\n{tail(worker)}"
            )
        if f"celery@{worker.name} ready." in worker.output():
            return
        time.sleep(0.1)
    raise RuntimeError(f"worker {worker.name} not ready after {timeout:.0f} s:\n{tail(worker)}")


def tail(worker: Worker, size: int = 3000) -> str:
    return worker.output()[-size:]


def stop_worker(worker: Worker, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the worker's process group (warm shutdown), SIGKILL it after `timeout`."""
    group = worker.process.pid
    if worker.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        try:
            worker.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            worker.process.wait()
    with contextlib.suppress(ProcessLookupError):  # any slot process left behind
        os.killpg(group, signal.SIGKILL)


@contextlib.contextmanager
def running_workers(
    home: Path, broker_url: str, count: int, concurrency: int, first: int = 1
) -> Iterator[list[Worker]]:
    """`count` workers `bench-w{first}`, `bench-w{first + 1}`, ..., each with `concurrency` slot
    processes, ready (Celery names their nodes `celery@bench-wN`); stopped afterwards."""
    workers: list[Worker] = []
    try:
        for i in range(first, first + count):
            workers.append(start_worker(home, broker_url, f"bench-w{i}", concurrency))
        for worker in workers:
            wait_ready(worker)
        yield workers
    finally:
        for worker in workers:
            stop_worker(worker)
