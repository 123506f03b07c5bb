"""Profile the server during a workload: py-spy on the scheduler and the API, CPU time per process.

    python -m benchmarks.profile [--config sqlite|postgres|celery-redis|celery-rabbitmq] [--workload W1]
                                 [--rounds 3] [--rate 250] [--gil] [--concurrency N] [--history]

Writes under benchmarks/results/: the scheduler's flame graph (SVG), the collapsed stacks of the
scheduler and the API (readable by speedscope or flamegraph.pl) and a text summary (top functions
by self and inclusive samples, CPU seconds per process role), which it also prints.

On a Celery configuration it starts the broker namespace and one `zonda worker` as `benchmarks.run`
does (`-c 2` for W2, `-c 16` otherwise), also records the worker's main process, and counts the
CPU of the broker and of PostgreSQL (all its backends) too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from benchmarks import brokers, history, load, procs, report, server, workloads
from benchmarks.run import CONFIGS, RESULTS, broker_for, database

PY_SPY = Path(sys.executable).with_name("py-spy")
TOP = 30
ATTACH_S = 0.3
_LINE = re.compile(r":\d+\)$")


@dataclass(frozen=True)
class Options:
    config: str
    workload: str
    rounds: int
    rate: int
    workers: int
    idle: bool
    hold_sqlite: bool
    wait_quiet: float
    spy: bool
    gil: bool = False
    concurrency: int | None = None
    history: bool = False


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description="py-spy profile of the Zonda server during a workload")
    parser.add_argument("--config", "--db", dest="config", choices=sorted(CONFIGS), default="sqlite")
    parser.add_argument("--workload", choices=sorted(workloads.WORKLOADS), default="W1")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of the workload while recording")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--idle", action="store_true", help="also sample idle (waiting) frames: wall time")
    parser.add_argument(
        "--hold-sqlite",
        action="store_true",
        help="experiment: keep one extra connection to the server's SQLite DB open while measuring, so "
        "no Zonda connection is ever the last one to close (no WAL checkpoint + delete on each close)",
    )
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument(
        "--no-spy", dest="spy", action="store_false", help="only CPU time per process role, no py-spy"
    )
    parser.add_argument(
        "--gil",
        action="store_true",
        help="py-spy samples only the thread holding the GIL (CPU in Python; a busy machine does not "
        "inflate the frames of threads waiting for a CPU)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="Celery: the worker's -c (default 2 for W2, else 16)"
    )
    parser.add_argument(
        "--history",
        action="store_true",
        help="first fill the DB with W4's history (10,000 DAG versions, 1,000,000 ended task instances)",
    )
    args = parser.parse_args(argv)
    return Options(
        args.config,
        args.workload,
        max(1, args.rounds),
        args.rate,
        args.workers,
        args.idle,
        args.hold_sqlite,
        args.wait_quiet,
        args.spy,
        args.gil,
        args.concurrency,
        args.history,
    )


def spy(pid: int, out: Path, fmt: str, options: Options) -> subprocess.Popen[bytes]:
    """py-spy record on `pid` without pausing it (--nonblocking) until SIGINT."""
    command = [str(PY_SPY), "record", "-p", str(pid), "-r", str(options.rate), "-f", fmt, "-o", str(out)]
    command += ["--nonblocking", *(["--idle"] if options.idle else []), *(["--gil"] if options.gil else [])]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def finish(recorders: list[subprocess.Popen[bytes]]) -> None:
    for rec in recorders:
        rec.send_signal(signal.SIGINT)
    for rec in recorders:
        try:
            rec.wait(60)
        except subprocess.TimeoutExpired:
            rec.kill()
            rec.wait()


def frame_name(frame: str) -> str:
    """'fn (/x/site-packages/sqlalchemy/engine/base.py:1234)' -> 'fn (sqlalchemy/engine/base.py)'."""
    frame = _LINE.sub(")", frame)
    for anchor in ("site-packages/", "/work/main/", "lib/python3"):
        if anchor in frame:
            head, _, tail = frame.partition("(")
            return f"{head}({tail.split(anchor, 1)[1]}" if anchor in tail else frame
    return frame


def read_collapsed(path: Path) -> list[tuple[list[str], int]]:
    stacks: list[tuple[list[str], int]] = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append(([frame_name(f) for f in stack.split(";")], int(count)))
    return stacks


def top_functions(stacks: list[tuple[list[str], int]]) -> tuple[int, Counter[str], Counter[str]]:
    """(total samples, self samples by function, inclusive samples by function)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for frames, count in stacks:
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    return total, own, inclusive


def describe(label: str, path: Path, seconds: float, options: Options) -> str:
    if not path.exists():
        return f"## {label}: no samples recorded ({path.name} missing)\n"
    total, own, inclusive = top_functions(read_collapsed(path))
    share = total / max(seconds * options.rate, 1)
    kind = "all samples, idle included" if options.idle else "busy samples only"
    kind += ", GIL holder only" if options.gil else ""
    lines = [
        f"## {label}: {total} samples = {share:.0%} of {seconds:.1f} s recorded x {options.rate}/s ({kind}; "
        f"the recording also covers ~{ATTACH_S:g} s of idle attach time before the workload)"
    ]
    for title, counter in (("self", own), ("inclusive", inclusive)):
        lines.append(f"\n### top {TOP} by {title} samples (% of the samples)")
        lines += [f"{100 * n / max(total, 1):6.1f}%  {name}" for name, n in counter.most_common(TOP)]
    return "\n".join(lines) + "\n"


TASKS_PER_RUN = {"W1a": 40, "W1": 800, "W1r3": 800, "W2": 1002, "W3": 20}


def cpu_table(rec: Recording, tasks: int) -> str:
    before, after, seconds = rec.cpu_before, rec.cpu_after, rec.seconds
    cores = os.cpu_count() or 1
    lines = [
        f"## CPU seconds per process role during {seconds:.1f} s ({cores} cores = {cores * seconds:.1f} s max)"
        f", {tasks} task instances"
    ]
    total = 0.0
    for role, now in after.items():
        used = now - before.get(role, 0.0)
        kernel = rec.sys_after[role] - rec.sys_before.get(role, 0.0)
        total += used
        lines.append(
            f"{role:>14}: {used:7.2f} s  ({100 * used / seconds:5.1f}% of one core, "
            f"{1000 * used / max(tasks, 1):.2f} ms per task, {100 * kernel / max(used, 1e-9):.0f}% in the kernel)"
        )
    lines.append(f"{'all':>14}: {total:7.2f} s  ({1000 * total / max(tasks, 1):.2f} ms of CPU per task)")
    return "\n".join(lines) + "\n"


@dataclass
class Recording:
    """What one profiled session produced."""

    paths: dict[str, Path]
    figures: list[dict[str, float]]
    seconds: float
    recorded_s: float
    cpu_before: dict[str, float]
    cpu_after: dict[str, float]
    sys_before: dict[str, float]
    sys_after: dict[str, float]


def output_paths(base: Path) -> dict[str, Path]:
    return {
        "scheduler.svg": base.with_name(base.name + "-scheduler.svg"),
        "scheduler": base.with_name(base.name + "-scheduler.collapsed.txt"),
        "api": base.with_name(base.name + "-api.collapsed.txt"),
        "worker": base.with_name(base.name + "-worker.collapsed.txt"),
        "worker supervisor": base.with_name(base.name + "-worker-supervisor.collapsed.txt"),
        "summary": base.with_name(base.name + "-summary.txt"),
    }


def busiest(pids: list[int]) -> int:
    """The worker that used the most CPU so far (the executor reuses the most recently idle ones)."""
    return max(pids, key=procs.cpu_seconds)


def record(
    options: Options,
    srv: server.Server,
    http: httpx.Client,
    paths: dict[str, Path],
    celery: tuple[brokers.Broker, int] | None = None,
) -> Recording:
    """Warm up, attach py-spy to the scheduler and the API, run the workload `rounds` times.
    `celery`: the broker and the main pid of the `zonda worker` of a Celery configuration."""
    run = workloads.WORKLOADS[options.workload]
    if options.history:
        print(f"W4's history written: {history.seed(srv.database_url)}", flush=True)
    run(http)  # warm-up: workers import the DAG modules
    if celery is None:
        by_role = procs.roles(srv.pid, srv.port)
    else:
        broker, worker = celery
        broker_port = urlsplit(broker.url).port or brokers.DEFAULT_PORTS[broker.kind]
        pg_port = urlsplit(f"//{server.PG_SERVER}").port or 5432
        by_role = procs.celery_roles(srv.pid, srv.port, broker_port, pg_port, worker)
    recorders = (
        []
        if not options.spy
        else [
            spy(by_role["scheduler"][0], paths["scheduler.svg"], "flamegraph", options),
            spy(by_role["scheduler"][0], paths["scheduler"], "raw", options),
            *[spy(pid, paths["api"], "raw", options) for pid in by_role["api"][:1]],
            spy(busiest(by_role["workers"] or by_role["worker supervisor"]), paths["worker"], "raw", options),
            *[
                spy(pid, paths["worker supervisor"], "raw", options)
                for pid in by_role.get("worker supervisor", [])
            ],
        ]
    )
    spy_began = time.monotonic()
    try:
        time.sleep(ATTACH_S)
        snapshot0, began = procs.cpu_snapshot(by_role), time.monotonic()
        figures = [run(http).figures for _ in range(options.rounds)]
        seconds = time.monotonic() - began
        snapshot1 = procs.cpu_snapshot(by_role)
    finally:
        finish(recorders)
    recorded = time.monotonic() - spy_began
    alive = set(snapshot0) & set(snapshot1)
    cpu_before, sys_before = procs.role_sums(by_role, snapshot0, alive)
    cpu_after, sys_after = procs.role_sums(by_role, snapshot1, alive)
    return Recording(paths, figures, seconds, recorded, cpu_before, cpu_after, sys_before, sys_after)


def render(options: Options, stamp: str, rec: Recording) -> str:
    celery = CONFIGS[options.config].broker is not None
    return "\n".join(
        [
            f"# profile of {options.workload} x{options.rounds} on {options.config}, {stamp}"
            f"{f' (one zonda worker -c {worker_concurrency(options)})' if celery else ''}"
            f"{' (idle frames included)' if options.idle else ''}"
            f"{' (extra SQLite connection held open)' if options.hold_sqlite else ''}",
            *[f"round {i + 1}: {run_brief(f)}" for i, f in enumerate(rec.figures)],
            "",
            cpu_table(rec, TASKS_PER_RUN[options.workload] * options.rounds),
            *(
                [
                    describe("scheduler", rec.paths["scheduler"], rec.recorded_s, options),
                    describe("api", rec.paths["api"], rec.recorded_s, options),
                    describe(
                        "one worker (the busiest after the warm-up)",
                        rec.paths["worker"],
                        rec.recorded_s,
                        options,
                    ),
                    *(
                        [
                            describe(
                                "the Celery worker's main process",
                                rec.paths["worker supervisor"],
                                rec.recorded_s,
                                options,
                            )
                        ]
                        if celery
                        else []
                    ),
                    f"flame graph: {rec.paths['scheduler.svg']}",
                ]
                if options.spy
                else ["(no py-spy: --no-spy)"]
            ),
        ]
    )


@contextlib.contextmanager
def held_open(srv: server.Server | None) -> Iterator[None]:
    """Keep a connection to the server's SQLite DB open (the --hold-sqlite experiment)."""
    if srv is None:
        yield
        return
    conn = sqlite3.connect(srv.home / "zonda.db")
    conn.execute("SELECT 1").fetchall()
    try:
        yield
    finally:
        conn.close()


def worker_concurrency(options: Options) -> int:
    return options.concurrency or (2 if options.workload == "W2" else 16)


def profile(options: Options) -> Path:
    if options.wait_quiet > 0:
        load.wait_quiet(options.wait_quiet)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "-held" if options.hold_sqlite else ""
    paths = output_paths(RESULTS / f"profile-{stamp}-{options.config}-{options.workload}{suffix}")
    config = CONFIGS[options.config]
    with (
        database(config.db) as (db_url, _),
        broker_for(config) as broker,
        server.running_server(
            db_url,
            options.workers,
            extra_env=lambda home: brokers.server_env(home, broker.url) if broker is not None else {},
        ) as srv,
        srv.client() as http,
        held_open(srv if options.hold_sqlite and config.db == "sqlite" else None),
        celery_worker(srv, broker, worker_concurrency(options)) as worker,
    ):
        celery = (broker, worker) if broker is not None and worker is not None else None
        rec = record(options, srv, http, paths, celery)
    text = render(options, stamp, rec)
    paths["summary"].write_text(text)
    print(text)
    return paths["summary"]


@contextlib.contextmanager
def celery_worker(
    srv: server.Server, broker: brokers.Broker | None, concurrency: int
) -> Iterator[int | None]:
    """A ready `zonda worker -c concurrency` for a Celery configuration (its main pid), else None."""
    if broker is None:
        yield None
        return
    with brokers.running_workers(srv.home, broker.url, 1, concurrency) as started:
        yield started[0].process.pid


def run_brief(figures: dict[str, float]) -> str:
    return ", ".join(f"{k}={report.fmt(v)}" for k, v in figures.items())


if __name__ == "__main__":
    profile(parse_args())
