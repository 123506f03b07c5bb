"""Withdrawing lost requests, as after a takeover of a big held backlog: what it costs the
scheduler's loop and the worker fleet.

    python -m benchmarks.withdrawals [--brokers redis,rabbitmq] [--attempts 2000] [--concurrency 16]

One `zonda worker -c N` on a fresh broker namespace, and a Celery executor. The same attempts are
withdrawn twice: one `withdraw` call per attempt (one revoke broadcast each), then one call for
all of them, as the scheduler does with the attempts that fall due in one step. Reported: the
caller's wall time (the loop is stalled for it) and the CPU the worker's processes spent on the
revokes, measured until it has settled. Prints one markdown row per broker and way.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import brokers, procs
from zonda.auth.keys import secret_keys
from zonda.executors.base import QueuedAttempt
from zonda.executors.celery.app import make_app
from zonda.executors.celery.executor import CeleryExecutor
from zonda.executors.celery.sealing import Sealer
from zonda.settings import Settings

SETTLE = 0.5
"""Seconds of no CPU use by the worker that mean it has handled every revoke."""


def settled_cpu(worker: brokers.Worker) -> float:
    """The CPU seconds the worker's processes used so far, once they stopped using any."""
    pid = worker.process.pid
    last = procs.total_cpu_seconds([pid, *procs.descendants(pid)])
    while True:
        time.sleep(SETTLE)
        now = procs.total_cpu_seconds([pid, *procs.descendants(pid)])
        if now == last:
            return now
        last = now


def measure(worker: brokers.Worker, withdraw: Callable[[], None]) -> tuple[float, float]:
    """(caller's seconds, worker CPU seconds) of one way of withdrawing."""
    before = settled_cpu(worker)
    start = time.perf_counter()
    withdraw()
    elapsed = time.perf_counter() - start
    return elapsed, settled_cpu(worker) - before


def run(kind: str, attempts: int, concurrency: int) -> list[str]:
    rows = []
    with brokers.fresh_broker(kind) as broker, tempfile.TemporaryDirectory() as tmp:
        worker = brokers.start_worker(Path(tmp), broker.url, "bench-withdraw", concurrency)
        sealer = Sealer(secret_keys(Settings(home=Path(tmp))), per_tenant=False)
        executor = CeleryExecutor(
            make_app(Settings(broker_url=broker.url)), "bench-withdrawals", sealer=sealer
        )
        try:
            brokers.wait_ready(worker)
            executor.start()
            now = datetime.now(UTC)
            lost = [QueuedAttempt((f"run-{i:06d}", "task", -1), 1, now) for i in range(attempts)]

            def one_by_one() -> None:
                for attempt in lost:
                    executor.withdraw([attempt])

            def all_at_once() -> None:
                executor.withdraw(lost)

            ways = {"one call per attempt": one_by_one, "one call for all": all_at_once}
            for way, withdraw in ways.items():
                elapsed, cpu = measure(worker, withdraw)
                rows.append(
                    f"| {kind} | {way} | {elapsed * 1000:,.0f} | {cpu:.2f} | {cpu / attempts * 1000:.2f} |"
                )
        finally:
            executor.stop()
            brokers.stop_worker(worker)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", default="redis,rabbitmq")
    parser.add_argument("--attempts", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    print(f"{args.attempts} lost attempts, one `zonda worker -c {args.concurrency}`\n")
    print("| broker | way | caller, ms | worker CPU, s | worker CPU per attempt, ms |")
    print("| --- | --- | --- | --- | --- |")
    for kind in args.brokers.split(","):
        for row in run(kind, args.attempts, args.concurrency):
            print(row, flush=True)


if __name__ == "__main__":
    main()
