"""Celery alone, without Zonda: how many trivial tasks per second two worker processes take from a broker.

    python -m benchmarks.celery_pools [--brokers redis,rabbitmq] [--tasks 1000] [--repeat 3]

Each task publishes one small message to a reply queue (as a Zonda task reports its outcome) and
appends its end time to a file. Late acks and `worker_prefetch_multiplier=1`, as Zonda configures
Celery. Three ways to run two processes:
- `prefork`: one Celery worker with a prefork pool of 2 (its main process hands tasks over);
- `threads`: two Celery workers with a `threads` pool of 1 each (Zonda's slots, ADR 0013);
- `solo`: two Celery workers with the `solo` pool.
Tasks/s = (tasks - 1) / (last end - first end). Prints one markdown row per broker and model.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from celery import Celery
from kombu import Queue

from benchmarks import brokers

MODELS = {"prefork": ("prefork", 2, 1), "threads": ("threads", 1, 2), "solo": ("solo", 1, 2)}
"""model -> (Celery pool, concurrency per worker, workers)."""
QUEUE, REPLIES = "bench-pools", "bench-pools-replies"
REPLY_QUEUE = Queue(REPLIES, durable=True)
START_TIMEOUT = 60.0


def make_app(url: str) -> Celery:
    app = Celery("bench_pools", broker=url, set_as_current=False)
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


def run_model(url: str, model: str, tasks: int, folder: Path) -> float:
    """Tasks/s of one model: start its workers, publish `tasks`, wait for them all to end."""
    pool, concurrency, count = MODELS[model]
    ends = folder / f"{model}.ends"
    ends.unlink(missing_ok=True)
    env = {**os.environ, "BENCH_POOLS_ENDS": str(ends)}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.celery_pools",
                "--worker",
                url,
                pool,
                str(concurrency),
                str(i),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(count)
    ]
    try:
        app = make_app(url)
        app.send_task("bench.noop", args=[-1], queue=QUEUE)
        deadline = time.monotonic() + START_TIMEOUT
        while not ends.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        ends.unlink()
        with app.producer_or_acquire() as producer:
            for i in range(tasks):
                app.send_task("bench.noop", args=[i], queue=QUEUE, producer=producer)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if ends.exists() and len(ends.read_text().split()) >= tasks:
                break
            time.sleep(0.1)
        times = sorted(float(t) for t in ends.read_text().split())
        return (len(times) - 1) / (times[-1] - times[0])
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
        with make_app(url).connection_for_write() as conn:
            for name in (QUEUE, REPLIES):
                conn.default_channel.queue_purge(name)


def serve(url: str, pool: str, concurrency: int, index: int) -> None:
    """A worker process of one model."""
    make_app(url).Worker(
        hostname=f"bench-pools-{index}-{os.getpid()}@localhost",
        queues=[QUEUE],
        concurrency=concurrency,
        pool_cls=pool,
        loglevel="WARNING",
        without_mingle=True,
        without_gossip=True,
        quiet=True,
    ).start()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--worker":
        serve(args[1], args[2], int(args[3]), int(args[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", default="redis,rabbitmq")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args(args)
    print("| broker | model | tasks/s (median, min-max over repetitions) |")
    print("| --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for kind in options.brokers.split(","):
            with brokers.fresh_broker(kind) as broker:
                for model in MODELS:
                    rates = [
                        run_model(broker.url, model, options.tasks, Path(folder))
                        for _ in range(options.repeat)
                    ]
                    print(
                        f"| {kind} | {model} | {statistics.median(rates):.0f} ({min(rates):.0f}-{max(rates):.0f}) |"
                    )


if __name__ == "__main__":
    main()
