"""Celery alone, without Zonda: how many trivial tasks per second two worker processes take from a
broker, and the CPU they and the broker spend per task.

    python -m benchmarks.celery_pools [--brokers redis,rabbitmq] [--tasks 1000] [--repeat 3]

Each task publishes one small message to a reply queue (as a Zonda task reports its outcome) and
appends its end time to a file. Late acks and `worker_prefetch_multiplier=1`, as Zonda configures
Celery. Three ways to run two processes:
- `prefork`: one Celery worker with a prefork pool of 2 (its main process hands tasks over);
- `threads`: two Celery workers with a `threads` pool of 1 each (Zonda's slots, ADR 0013);
- `solo`: two Celery workers with the `solo` pool.
On Redis, `threads` runs a second time on Zonda's Redis transport (`redis_transport.py`, one
redis-py client per channel instead of one per command), which Zonda's workers use.
Tasks/s = (tasks - 1) / (last end - first end). CPU per task: the worker processes' and the broker
server's CPU time from the first task published to the last one ended, over the tasks (the
producer, which publishes them all at the start, is not counted). Prints one markdown row per
broker and model: the figure is the median over repetitions, with min-max.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from celery import Celery
from kombu import Queue

from benchmarks import brokers, procs
from zonda.executors.celery.app import REDIS_TRANSPORT as TRANSPORT

MODELS = {"prefork": ("prefork", 2, 1), "threads": ("threads", 1, 2), "solo": ("solo", 1, 2)}
"""model -> (Celery pool, concurrency per worker, workers)."""
ZONDA_TRANSPORT = "threads, Zonda's Redis transport"
"""The `threads` model again, on `zonda.executors.celery.redis_transport` (Redis only)."""
QUEUE, REPLIES = "bench-pools", "bench-pools-replies"
REPLY_QUEUE = Queue(REPLIES, durable=True)
START_TIMEOUT = 60.0


def make_app(url: str, transport: str = "") -> Celery:
    app = Celery("bench_pools", broker=url, set_as_current=False)
    if transport:
        app.conf.broker_transport = transport
    app.conf.update(
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
    )
    ends = Path(os.environ.get("BENCH_POOLS_ENDS", os.devnull))

    @app.task(name="bench.noop", ignore_result=True)  # type: ignore[untyped-decorator]
    def noop(i: int) -> None:
        with app.producer_or_acquire() as producer:
            producer.publish(
                {"i": i}, exchange="", routing_key=REPLIES, serializer="json", declare=[REPLY_QUEUE]
            )
        with ends.open("a") as out:
            out.write(f"{time.time()}\n")

    return app


@dataclass(frozen=True)
class Measured:
    """One repetition of one model."""

    tasks_per_s: float
    worker_ms: float
    broker_ms: float


def run_model(url: str, kind: str, model: str, tasks: int, folder: Path) -> Measured:
    """One repetition: start the model's workers, publish `tasks`, wait for them all to end."""
    transport = TRANSPORT if model == ZONDA_TRANSPORT else ""
    pool, concurrency, count = MODELS["threads" if transport else model]
    ends = folder / "ends"
    ends.unlink(missing_ok=True)
    env = {**os.environ, "BENCH_POOLS_ENDS": str(ends)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.celery_pools", "--worker", url, pool, str(concurrency), str(i)]
            + ([transport] if transport else []),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(count)
    ]
    try:
        app = make_app(url, transport)
        app.send_task("bench.noop", args=[-1], queue=QUEUE)
        deadline = time.monotonic() + START_TIMEOUT
        while not ends.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        ends.unlink()
        broker = procs.listening_pids(brokers.DEFAULT_PORTS[kind])
        pids = [p for w in workers for p in (w.pid, *procs.descendants(w.pid))]
        before = procs.total_cpu_seconds(pids), procs.total_cpu_seconds(broker)
        with app.producer_or_acquire() as producer:
            for i in range(tasks):
                app.send_task("bench.noop", args=[i], queue=QUEUE, producer=producer)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if ends.exists() and len(ends.read_text().split()) >= tasks:
                break
            time.sleep(0.1)
        worker_s, broker_s = (
            procs.total_cpu_seconds(pids) - before[0],
            procs.total_cpu_seconds(broker) - before[1],
        )
        times = sorted(float(t) for t in ends.read_text().split())
        return Measured(
            (len(times) - 1) / (times[-1] - times[0]), 1000 * worker_s / tasks, 1000 * broker_s / tasks
        )
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
        with make_app(url).connection_for_write() as conn:
            for name in (QUEUE, REPLIES):
                conn.default_channel.queue_purge(name)


def serve(url: str, pool: str, concurrency: int, index: int, transport: str) -> None:
    """A worker process of one model."""
    make_app(url, transport).Worker(
        hostname=f"bench-pools-{index}-{os.getpid()}@localhost",
        queues=[QUEUE],
        concurrency=concurrency,
        pool_cls=pool,
        loglevel="WARNING",
        without_mingle=True,
        without_gossip=True,
        quiet=True,
    ).start()


def models(kind: str) -> list[str]:
    return [*MODELS, ZONDA_TRANSPORT] if kind == "redis" else list(MODELS)


def spread(values: list[float], digits: int) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--worker":
        serve(args[1], args[2], int(args[3]), int(args[4]), args[5] if len(args) > 5 else "")
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", default="redis,rabbitmq")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args(args)
    print("| broker | model | tasks/s | worker CPU per task, ms | broker CPU per task, ms |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for kind in options.brokers.split(","):
            with brokers.fresh_broker(kind) as broker:
                for model in models(kind):
                    runs = [
                        run_model(broker.url, kind, model, options.tasks, Path(folder))
                        for _ in range(options.repeat)
                    ]
                    print(
                        f"| {kind} | {model} | {spread([r.tasks_per_s for r in runs], 0)} "
                        f"| {spread([r.worker_ms for r in runs], 2)} | {spread([r.broker_ms for r in runs], 2)} |"
                    )


if __name__ == "__main__":
    main()
