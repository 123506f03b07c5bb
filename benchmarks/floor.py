"""W0: the physical floor. A committed single-row UPDATE (SQLite WAL + synchronous=NORMAL, and
PostgreSQL over loopback) and a small-message round trip to a pre-started worker process over a pipe;
for a Celery configuration also a round trip to a pre-started process through the broker, and the
CPU a plain Celery worker (no Zonda code) spends per message of a trivial task: Celery's own share
of what a Zonda slot spends per message.

Also how fast the machine is at that hour, since the shared benchmark machine's speed varies
by up to twice from hour to hour: a pure-Python loop (CPU) and the first touch of fresh memory
(page faults, which the guest's memory balloon makes slow at times). The pipe round trip, a
wake-up of another process, is the figure that has followed those swings."""

from __future__ import annotations

import mmap
import multiprocessing
import sqlite3
import statistics
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import psycopg

from benchmarks.procs import cpu_seconds

COMMITS = 2000
ROUND_TRIPS = 2000
BROKER_ROUND_TRIPS = 1000
BROKER_TIMEOUT = 30.0
CELERY_MESSAGES = 1000
CELERY_WARMUP = 50
WARMUP = 50
LOOP_STEPS = 10_000_000
FRESH_MEMORY = 256 * 1024 * 1024
PAGE = 4096
SPEED_TRIES = 3
MESSAGE = {"run_id": "r-0000", "task_id": "s3_2", "map_index": -1, "try_number": 1}


def median_us(operation: Callable[[], None], count: int) -> float:
    """Median wall time of `operation` in µs over `count` calls, after a short warm-up."""
    for _ in range(WARMUP):
        operation()
    samples: list[float] = []
    for _ in range(count):
        start = time.perf_counter_ns()
        operation()
        samples.append((time.perf_counter_ns() - start) / 1000.0)
    return statistics.median(samples)


def sqlite_commit_us(count: int = COMMITS) -> float:
    """Median µs of BEGIN IMMEDIATE; UPDATE one row; COMMIT on a WAL database with synchronous=NORMAL."""
    with tempfile.TemporaryDirectory(prefix="zonda-w0-") as folder:
        conn = sqlite3.connect(Path(folder) / "floor.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        conn.execute("INSERT INTO t VALUES (1, 0)")

        def commit() -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE t SET n = n + 1 WHERE id = 1")
            conn.execute("COMMIT")

        try:
            return median_us(commit, count)
        finally:
            conn.close()


def postgres_commit_us(url: str, count: int = COMMITS) -> float:
    """Median µs of UPDATE one row + COMMIT on PostgreSQL over loopback TCP."""
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS zonda_w0 (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        conn.execute("INSERT INTO zonda_w0 VALUES (1, 0) ON CONFLICT DO NOTHING")
        conn.commit()

        def commit() -> None:
            conn.execute("UPDATE zonda_w0 SET n = n + 1 WHERE id = 1")
            conn.commit()

        try:
            return median_us(commit, count)
        finally:
            conn.execute("DROP TABLE zonda_w0")
            conn.commit()


def _echo(conn: Connection) -> None:
    """The pre-started worker: send back every message until None."""
    while (message := conn.recv()) is not None:
        conn.send(message)


def pipe_round_trip_us(count: int = ROUND_TRIPS) -> float:
    """Median µs to send a small dict to a pre-started (spawned) process over a Pipe and get it back."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=True)
    process = ctx.Process(target=_echo, args=(child,), daemon=True)
    process.start()
    child.close()

    def round_trip() -> None:
        parent.send(MESSAGE)
        parent.recv()

    try:
        return median_us(round_trip, count)
    finally:
        parent.send(None)
        process.join(5)


def _broker_echo(url: str, requests_name: str, replies_name: str) -> None:
    """The pre-started process: take each message from one queue and publish it to the other, until None."""
    from kombu import Connection

    with Connection(url) as conn:
        requests = conn.SimpleQueue(requests_name, no_ack=True)
        replies = conn.SimpleQueue(replies_name, no_ack=True)
        while (payload := requests.get(block=True, timeout=BROKER_TIMEOUT).payload) is not None:
            replies.put(payload)


def broker_round_trip_us(url: str, count: int = BROKER_ROUND_TRIPS) -> float:
    """Median µs to publish a small message to a queue, have a pre-started (spawned) process consume it
    and publish it to a second queue, and consume it there (kombu, as Celery uses it, no acks):
    two broker hops, the shortest path of a request to a worker and its report back."""
    from kombu import Connection

    tag = uuid.uuid4().hex[:8]
    names = (f"zonda-w0-requests-{tag}", f"zonda-w0-replies-{tag}")
    ctx = multiprocessing.get_context("spawn")
    process = ctx.Process(target=_broker_echo, args=(url, *names), daemon=True)
    process.start()
    with Connection(url) as conn:
        requests = conn.SimpleQueue(names[0], no_ack=True)
        replies = conn.SimpleQueue(names[1], no_ack=True)

        def round_trip() -> None:
            requests.put(MESSAGE)
            replies.get(block=True, timeout=BROKER_TIMEOUT)

        try:
            return median_us(round_trip, count)
        finally:
            requests.put(None)
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()


def _celery_worker(url: str, queue: str, done: str) -> None:
    """The pre-started plain Celery worker: a task that returns a small dict, and one that says the
    tasks before it ran (one thread runs them in order); Celery's `threads` pool of one, as a slot."""
    from celery import Celery
    from celery.exceptions import SecurityWarning
    from kombu import Connection

    warnings.filterwarnings("ignore", category=SecurityWarning)  # as root in CI
    app = Celery("zonda-w0", broker=url, set_as_current=False)
    app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False, worker_redirect_stdouts=False)

    @app.task(name="w0.trivial")  # type: ignore[untyped-decorator]
    def trivial(index: int) -> dict[str, int]:
        return {"index": index, "square": index * index}

    @app.task(name="w0.done")  # type: ignore[untyped-decorator]
    def ran() -> None:
        with Connection(url) as conn:
            conn.SimpleQueue(done, no_ack=True).put("done")

    worker = app.Worker(
        queues=[queue],
        concurrency=1,
        pool_cls="threads",
        without_mingle=True,
        without_gossip=True,
        without_heartbeat=True,
        loglevel="WARNING",
        quiet=True,
    )
    worker.start()


def celery_message_cpu_us(url: str, count: int = CELERY_MESSAGES) -> float:
    """CPU µs (user + system) a plain Celery worker spends per message of a trivial task, over
    `count` messages published ahead, after a warm-up: the worker's process only (the publisher's
    and the broker's CPU are not counted)."""
    from celery import Celery
    from kombu import Connection

    tag = uuid.uuid4().hex[:8]
    queue, done = f"zonda-w0-celery-{tag}", f"zonda-w0-celery-done-{tag}"
    process = multiprocessing.get_context("spawn").Process(
        target=_celery_worker, args=(url, queue, done), daemon=True
    )
    process.start()
    assert process.pid is not None
    app = Celery("zonda-w0", broker=url, set_as_current=False)
    try:
        with Connection(url) as conn, app.producer_or_acquire() as producer:
            finished = conn.SimpleQueue(done, no_ack=True)

            def run(messages: int) -> None:
                for index in range(messages):
                    app.send_task("w0.trivial", args=[index], queue=queue, producer=producer)
                app.send_task("w0.done", queue=queue, producer=producer)
                finished.get(block=True, timeout=BROKER_TIMEOUT)

            run(CELERY_WARMUP)
            before = cpu_seconds(process.pid)
            run(count)
            return (cpu_seconds(process.pid) - before) * 1e6 / (count + 1)
    finally:
        process.kill()  # nothing of it to keep: a warm shutdown only costs time and prints
        process.join()
        with Connection(url) as conn:
            for name in (queue, done):
                conn.SimpleQueue(name).queue.delete()


def python_loop_ms(steps: int = LOOP_STEPS) -> float:
    """Fastest of a few runs of an empty Python loop of `steps` steps, in ms: the CPU's speed now."""
    best = float("inf")
    for _ in range(SPEED_TRIES):
        start = time.perf_counter()
        for _ in range(steps):
            pass
        best = min(best, time.perf_counter() - start)
    return best * 1000.0


def fresh_memory_ms(size: int = FRESH_MEMORY) -> float:
    """Fastest of a few first writes to every 4 KiB page of `size` fresh bytes, in ms: the cost of
    page faults now (huge pages are turned off for the mapping, so each page faults on its own)."""
    best = float("inf")
    for _ in range(SPEED_TRIES):
        with mmap.mmap(-1, size) as fresh:
            if hasattr(mmap, "MADV_NOHUGEPAGE"):
                fresh.madvise(mmap.MADV_NOHUGEPAGE)
            start = time.perf_counter()
            fresh[::PAGE] = b"\x01" * len(range(0, size, PAGE))
            best = min(best, time.perf_counter() - start)
    return best * 1000.0


def measure(db: str, pg_url: str | None, broker_url: str | None = None) -> dict[str, float]:
    """W0 figures for one configuration: the machine's speed now, the commit floor of its DB
    (`commit_us`), the pipe floor, and with a broker the broker floor and Celery's CPU per message."""
    figures = {
        "python_loop_ms": python_loop_ms(),
        "fresh_memory_ms": fresh_memory_ms(),
        "pipe_round_trip_us": pipe_round_trip_us(),
    }
    if broker_url is not None:
        figures["broker_round_trip_us"] = broker_round_trip_us(broker_url)
        figures["celery_message_cpu_us"] = celery_message_cpu_us(broker_url)
    if db == "sqlite":
        figures["commit_us"] = sqlite_commit_us()
    else:
        assert pg_url is not None
        figures["commit_us"] = postgres_commit_us(pg_url)
    return figures
