"""Memory of long-running processes: does any of them grow with the work it has done?

    python -m benchmarks.soak [--config sqlite|postgres|celery-redis|celery-rabbitmq] [--rounds 30]
                              [--workload W1]

Starts a server as `benchmarks.run` does (and one `zonda worker -c 16` on a Celery
configuration), runs the workload `rounds` times back to back (W1: 800 tasks a round) and, after
each round, reads the proportional set size (PSS: shared pages split among the processes that map
them, so forked workers are not counted many times) of every process of each role. A process that
keeps something per run or per task grows in step with the rounds; one that only warms up levels
off. Reports each role's PSS after the first round and at the end, and the growth per 1,000 tasks
over the second half (after warm-up). Writes the table to benchmarks/results/ and prints it.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks import brokers, procs, server, workloads
from benchmarks.profile import TASKS_PER_RUN, celery_worker
from benchmarks.run import CONFIGS, RESULTS, broker_for, database

MIB = 1024 * 1024


@dataclass(frozen=True)
class Options:
    config: str
    rounds: int
    workload: str


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description="memory of Zonda's processes over many runs")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="sqlite")
    parser.add_argument("--rounds", type=int, default=30, help="repetitions of the workload")
    parser.add_argument("--workload", choices=sorted(workloads.WORKLOADS), default="W1")
    args = parser.parse_args(argv)
    return Options(args.config, max(4, args.rounds), args.workload)


def pss_bytes(pid: int) -> int:
    """The process's proportional set size (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def role_pss(by_role: dict[str, list[int]]) -> dict[str, int]:
    """PSS summed per role; the broker and PostgreSQL are left out (their caches are not Zonda's)."""
    return {
        role: sum(pss_bytes(pid) for pid in pids)
        for role, pids in by_role.items()
        if role not in ("broker", "postgres")
    }


def slope_per_thousand(samples: list[int], tasks_per_round: int) -> float:
    """Least-squares growth in MiB per 1,000 tasks over the second half of the rounds."""
    half = samples[len(samples) // 2 :]
    xs = [i * tasks_per_round / 1000 for i in range(len(half))]
    return statistics.linear_regression(xs, [s / MIB for s in half]).slope


def soak(options: Options) -> Path:
    config = CONFIGS[options.config]
    run = workloads.WORKLOADS[options.workload]
    tasks = TASKS_PER_RUN[options.workload]
    history: list[dict[str, int]] = []
    with (
        database(config.db) as (db_url, _),
        broker_for(config) as broker,
        server.running_server(
            db_url,
            16,
            extra_env=lambda home: brokers.server_env(home, broker.url) if broker is not None else {},
        ) as srv,
        srv.client() as http,
        celery_worker(srv, broker, 16) as worker,
    ):
        if broker is None or worker is None:
            by_role = procs.roles(srv.pid, srv.port)
        else:
            broker_port = urlsplit(broker.url).port or brokers.DEFAULT_PORTS[broker.kind]
            pg_port = urlsplit(f"//{server.PG_SERVER}").port or 5432
            by_role = procs.celery_roles(srv.pid, srv.port, broker_port, pg_port, worker)
        for i in range(options.rounds):
            run(http)
            if broker is None:
                by_role["workers"] = procs.descendants(by_role["scheduler"][0])
            history.append(role_pss(by_role))
            print(
                f"  round {i + 1}/{options.rounds}: "
                + ", ".join(f"{r} {b / MIB:.1f}" for r, b in history[-1].items())
            )
    text = render(options, tasks, history)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"soak-{stamp}-{options.config}-{options.workload}.txt"
    out.write_text(text)
    print(text)
    return out


def render(options: Options, tasks: int, history: list[dict[str, int]]) -> str:
    lines = [
        f"# memory (PSS, MiB) over {options.rounds} x {options.workload} ({options.rounds * tasks:,} tasks) "
        f"on {options.config}",
        "",
        f"| process role | after round 1 | after round {options.rounds // 2} | after round {options.rounds} | growth per 1,000 tasks, 2nd half |",
        "| --- | --- | --- | --- | --- |",
    ]
    for role in history[0]:
        samples = [h.get(role, 0) for h in history]
        lines.append(
            f"| {role} | {samples[0] / MIB:.1f} | {samples[options.rounds // 2 - 1] / MIB:.1f} | "
            f"{samples[-1] / MIB:.1f} | {slope_per_thousand(samples, tasks):+.3f} MiB |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    soak(parse_args())
