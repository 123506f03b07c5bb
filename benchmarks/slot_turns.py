"""Slots taking turns on a worker's queues, against every slot consuming: tasks that wait.

    python -m benchmarks.slot_turns [--broker redis] [--concurrency 16] [--repeat 3] [--redis-db 0]

One `zonda worker -c N` (ADR 0013) on a fresh broker namespace and a Celery executor driven
directly (no scheduler, no metadata DB), once with `ZONDA_CELERY_SLOTS_TAKE_TURNS=true` (the
default) and once with `false`. On each: 16 half-second sleeps on the fresh worker (how long until
all 16 run: its slots warm up, importing the DAG, one place at a time when they take turns), then
with every slot warm, 400 sleeps of 50 ms and 160 of 500 ms, each batch submitted at once (tasks/s
from the submit to the last outcome); last, 200 tasks that return at once, then 160 sleeps of
500 ms of a task not run before, which must not share messages as the quick ones did (the backlog
bundles by each task's own pace). W1 measures short computing tasks (`benchmarks.run`). Prints
markdown rows: the median over `--repeat`, with the min and max.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
import uuid
from multiprocessing.connection import wait
from pathlib import Path

from benchmarks import brokers
from zonda.artifacts.store import output_path
from zonda.auth.keys import secret_keys
from zonda.dag_processing.code_store import store_source
from zonda.executors.celery.app import make_app
from zonda.executors.celery.executor import CeleryExecutor
from zonda.executors.celery.sealing import Sealer
from zonda.settings import Settings
from zonda.worker.logs import log_path
from zonda.worker.protocol import TaskFinished, TaskRequest

DAG_ID = "slot_turns"
SOURCE = """
import time

from zonda import dag, task


@task
def sleep_50ms() -> None:
    time.sleep(0.05)


@task
def sleep_500ms() -> None:
    time.sleep(0.5)


@task
def instant() -> None:
    pass


@task
def sleep_500ms_after_instant() -> None:
    time.sleep(0.5)


@dag
def slot_turns() -> None:
    sleep_50ms()
    sleep_500ms()
    instant()
    sleep_500ms_after_instant()
"""

BATCHES = (("sleep_50ms", 400), ("sleep_500ms", 160))


class Bench:
    """A worker, an executor and the DAG's code, for one setting."""

    def __init__(self, root: Path, broker_url: str, concurrency: int, take_turns: bool) -> None:
        self.root = root
        digest = hashlib.sha256(SOURCE.encode()).hexdigest()
        self.code, self.digest = str(store_source(root / "code", digest, SOURCE)), digest
        env = {"ZONDA_CELERY_SLOTS_TAKE_TURNS": str(take_turns).lower()}
        self.worker = brokers.start_worker(root, broker_url, f"turns-{take_turns}".lower(), concurrency, env)
        sealer = Sealer(secret_keys(Settings(home=root)), per_tenant=False)
        self.executor = CeleryExecutor(
            make_app(Settings(broker_url=broker_url)), "bench-turns", sealer=sealer
        )

    def __enter__(self) -> Bench:
        brokers.wait_ready(self.worker)
        self.executor.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.executor.stop()
        brokers.stop_worker(self.worker)

    def run(self, task_id: str, count: int) -> list[TaskFinished]:
        """Submit `count` attempts of `task_id` at once; their outcomes, once all arrived."""
        requests = [self.request(task_id) for _ in range(count)]
        self.executor.submit(requests)
        done: list[TaskFinished] = []
        deadline = time.monotonic() + 120
        while len(done) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count - len(done)} of {count} {task_id} did not end in 120 s")
            wait(list(self.executor.waitables()), 0.2)
            done += [m for m in self.executor.poll() if isinstance(m, TaskFinished)]
            self.executor.checkpoint(self.executor.epoch)
        failed = [m.error for m in done if not m.ok]
        if failed:
            raise RuntimeError(f"{len(failed)} of {count} {task_id} failed, e.g. {failed[0]}")
        return done

    def request(self, task_id: str) -> TaskRequest:
        run_id = uuid.uuid4().hex
        return TaskRequest(
            run_id=run_id,
            dag_id=DAG_ID,
            task_id=task_id,
            map_index=-1,
            try_number=1,
            dag_version=1,
            code_uri=self.code,
            code_hash=self.digest,
            fileloc=f"/dags/{DAG_ID}.py",
            log_path=log_path(str(self.root / "logs"), DAG_ID, run_id, task_id, -1, 1),
            output_path=output_path(DAG_ID, run_id, task_id, -1, 1),
            queue=brokers.QUEUE,
        )


def measure(kind: str, concurrency: int, take_turns: bool, redis_db: int) -> dict[str, float]:
    """One setting on a fresh worker: seconds until 16 cold sleeps all run, tasks/s per batch."""
    figures: dict[str, float] = {}
    with (
        brokers.fresh_broker(kind, redis_db) as broker,
        tempfile.TemporaryDirectory() as tmp,
        Bench(Path(tmp), broker.url, concurrency, take_turns) as bench,
    ):
        submitted = time.time()
        cold = bench.run("sleep_500ms", concurrency)
        figures["cold"] = max(m.started_at.timestamp() for m in cold) - submitted
        bench.run("sleep_500ms", 4 * concurrency)
        for task_id, count in BATCHES:
            start = time.monotonic()
            bench.run(task_id, count)
            figures[task_id] = count / (time.monotonic() - start)
        bench.run("instant", 200)
        start = time.monotonic()
        bench.run("sleep_500ms_after_instant", 160)
        figures["after_instant"] = 160 / (time.monotonic() - start)
    return figures


def spread(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="redis", choices=["redis", "rabbitmq"])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis-db", type=int, default=brokers.DEFAULT_REDIS_DB)
    args = parser.parse_args()
    results: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for _ in range(args.repeat):
        for take_turns in (True, False):
            results[take_turns].append(measure(args.broker, args.concurrency, take_turns, args.redis_db))
    print(
        f"`zonda worker -c {args.concurrency}` on {args.broker}, {args.repeat} repetitions, median (min-max)\n"
    )
    print(
        "| slots | all of 16 cold 0.5 s sleeps running after, s | 50 ms sleeps, tasks/s | 0.5 s sleeps, tasks/s "
        "| 0.5 s sleeps of a new task after quick ones, tasks/s |"
    )
    print("| --- | --- | --- | --- | --- |")
    for take_turns, label in ((True, "take turns"), (False, "all consume")):
        runs = results[take_turns]
        print(
            f"| {label} | {spread([r['cold'] for r in runs], '.2f')} | "
            f"{spread([r['sleep_50ms'] for r in runs], '.0f')} | {spread([r['sleep_500ms'] for r in runs], '.1f')} | "
            f"{spread([r['after_instant'] for r in runs], '.1f')} |"
        )


if __name__ == "__main__":
    main()
