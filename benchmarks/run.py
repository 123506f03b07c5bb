"""Run the BENCHMARKS.md workloads on each configuration and write docs/benchmarks.md.

python -m benchmarks.run [--config sqlite,postgres,celery-redis,celery-rabbitmq|all] [--repeat N]
                         [--workloads W0,W1a,W1,W1r3,W2,W3,W4] [--workers 16] [--out docs/benchmarks.md]
                         [--no-warmup] [--wait-quiet SECONDS] [--celery-concurrency 16]
                         [--w2-concurrency 2] [--redis-db 0]

`--db` is an alias of `--config`. The Celery configurations run on PostgreSQL with `zonda worker`
processes started here (W2 on a worker of its own, see `passes`). W4 runs last in its pass: W1 again
after `history.seed` has filled the server's DB (BENCHMARKS.md W4).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg

from benchmarks import brokers, floor, history, load, report, server, stats, workloads

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
ALL_WORKLOADS = ("W0", "W1a", "W1", "W1r3", "W2", "W3", "W4")
SETTLE_S = 0.5


@dataclass(frozen=True)
class Config:
    """A benchmark configuration: its name, metadata DB (sqlite, postgres) and, for the Celery
    executor, its broker (redis, rabbitmq); None is the local executor."""

    name: str
    db: str
    broker: str | None = None


CONFIGS = {
    c.name: c
    for c in (
        Config("sqlite", "sqlite"),
        Config("postgres", "postgres"),
        Config("celery-redis", "postgres", "redis"),
        Config("celery-rabbitmq", "postgres", "rabbitmq"),
    )
}


@dataclass
class Options:
    configs: list[Config]
    repeat: int
    workloads: list[str]
    workers: int
    out: Path
    warmup: bool
    wait_quiet: float
    command: str
    celery_concurrency: int = 16
    w2_concurrency: int = 2
    redis_db: int = brokers.DEFAULT_REDIS_DB


@dataclass
class Samples:
    """Every repetition's figures (and raw records) of one configuration, by workload."""

    figures: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    raw: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, workload: str, figures: dict[str, float], raw: dict[str, Any]) -> None:
        self.figures.setdefault(workload, []).append(figures)
        self.raw.setdefault(workload, []).append({"figures": figures, **raw})


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description="Zonda benchmarks (BENCHMARKS.md)")
    parser.add_argument(
        "--config",
        "--db",
        dest="config",
        default="all",
        help=f"comma-separated, from {','.join(CONFIGS)}; or all (default)",
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workloads", default=",".join(ALL_WORKLOADS))
    parser.add_argument("--workers", type=int, default=16, help="local executor: worker processes")
    parser.add_argument(
        "--celery-concurrency",
        type=int,
        default=16,
        help="Celery: slot processes of the one `zonda worker` for W1a, W1, W1r3 and W3",
    )
    parser.add_argument(
        "--w2-concurrency",
        type=int,
        default=2,
        help="Celery: slot processes of the one `zonda worker` for W2 (the target is for 2)",
    )
    parser.add_argument(
        "--redis-db",
        type=int,
        default=brokers.DEFAULT_REDIS_DB,
        help="Redis db of celery-redis, flushed before and after (refused if another client uses it)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each configuration, wait up to SECONDS for the machine to be under 25%% busy",
    )
    args = parser.parse_args(argv)
    chosen = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = sorted(set(chosen) - set(ALL_WORKLOADS))
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; choose from {','.join(ALL_WORKLOADS)}")
    names = [c.strip() for c in args.config.split(",") if c.strip()]
    names = list(CONFIGS) if "all" in names else names
    unknown_configs = sorted(set(names) - set(CONFIGS))
    if unknown_configs or not names:
        parser.error(f"unknown configuration(s) {unknown_configs}; choose from {','.join(CONFIGS)} or all")
    argv_text = " ".join(sys.argv[1:] if argv is None else argv)
    command = f"python -m benchmarks.run {argv_text}".strip()
    return Options(
        [CONFIGS[n] for n in dict.fromkeys(names)],
        max(1, args.repeat),
        chosen,
        args.workers,
        args.out,
        args.warmup,
        args.wait_quiet,
        command,
        max(1, args.celery_concurrency),
        max(1, args.w2_concurrency),
        args.redis_db,
    )


@contextlib.contextmanager
def database(db: str) -> Iterator[tuple[str, str | None]]:
    """(server DB URL, libpq URL for W0 or None): SQLite under the server's home, or a fresh PG DB."""
    if db == "sqlite":
        yield "", None
        return
    with server.postgres_database() as url:
        yield server.sqlalchemy_url(url), url


def db_version(db: str, pg_url: str | None) -> str:
    if db == "sqlite" or pg_url is None:
        return f"SQLite {report.machine()['sqlite']}"
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0] if row else '?'}"


@contextlib.contextmanager
def broker_for(config: Config, redis_db: int = brokers.DEFAULT_REDIS_DB) -> Iterator[brokers.Broker | None]:
    """The Celery configuration's fresh broker namespace (cleaned afterwards), or None."""
    if config.broker is None:
        yield None
        return
    with brokers.fresh_broker(config.broker, redis_db) as broker:
        yield broker


def warm_up(http: Any, chosen: list[str]) -> None:
    """One untimed round so every worker has imported the DAG modules (long-lived workers)."""
    for name in ("W1", "W1r3", "W2", "W3"):
        if name in chosen or (name == "W1" and "W1a" in chosen):
            workloads.WORKLOADS[name](http)


@dataclass(frozen=True)
class Pass:
    """Workloads measured together; for Celery, on one `zonda worker` with `concurrency` slot processes
    (None: the local executor's workers, children of the server)."""

    workloads: list[str]
    concurrency: int | None = None


def passes(config: Config, options: Options, server_workloads: list[str]) -> list[Pass]:
    """Local executor: one pass. Celery: W1a, W1, W1r3 and W3 on a worker with `celery_concurrency` (16: up
    to 16 tasks at once, as the local executor's 16 workers), then W2 on a fresh worker with
    `w2_concurrency` (the issue's target is for 2 worker processes)."""
    if config.broker is None:
        return [Pass(server_workloads)]
    main = [w for w in server_workloads if w != "W2"]
    plan = [Pass(main, options.celery_concurrency)] if main else []
    return plan + ([Pass(["W2"], options.w2_concurrency)] if "W2" in server_workloads else [])


@contextlib.contextmanager
def workers_for(plan: Pass, number: int, srv: server.Server, broker: brokers.Broker | None) -> Iterator[None]:
    """The pass's `zonda worker` (named bench-w{number}), stopped afterwards; nothing for local."""
    if plan.concurrency is None or broker is None:
        yield
        return
    with brokers.running_workers(srv.home, broker.url, 1, plan.concurrency, first=number) as started:
        print(
            f"  worker {started[0].name} -c {plan.concurrency} ready: {', '.join(plan.workloads)}", flush=True
        )
        yield


def measure_server(
    options: Options,
    config: Config,
    db_url: str,
    broker: brokers.Broker | None,
    samples: Samples,
    logs_to: Path | None = None,
) -> list[str]:
    """Measure the server's workloads into `samples`; returns notes for the report (W4's history)."""
    server_workloads = [w for w in options.workloads if w != "W0"]
    notes: list[str] = []
    if not server_workloads:
        return notes

    def extra_env(home: Path) -> Mapping[str, str]:
        return brokers.server_env(home, broker.url) if broker is not None else {}

    with (
        server.running_server(db_url, options.workers, extra_env=extra_env, logs_to=logs_to) as srv,
        srv.client() as http,
    ):
        for number, plan in enumerate(passes(config, options, server_workloads), start=1):
            with workers_for(plan, number, srv, broker):
                if options.warmup:
                    warm_up(http, plan.workloads)
                for rep in range(options.repeat):
                    for name in [w for w in plan.workloads if w != "W4"]:
                        time.sleep(SETTLE_S)
                        result = workloads.WORKLOADS[name](http)
                        samples.add(name, result.figures, {"runs": result.runs, **result.extra})
                        print(f"  rep {rep + 1}/{options.repeat} {name}: {brief(result.figures)}", flush=True)
                if "W4" in plan.workloads:
                    notes.append(measure_w4(options, srv, http, samples))
    return notes


def measure_w4(options: Options, srv: server.Server, http: Any, samples: Samples) -> str:
    """Fill the server's DB with W4's history, then run W1 `repeat` times (after an untimed one, as
    the other workloads' warm-up); each repetition's p50 is also given as a multiple of W1's median
    p50 on the empty DB (measured before, same server)."""
    db_url = srv.database_url
    print(
        f"  writing W4's history ({history.VERSIONS:,} versions, {history.TASK_INSTANCES:,} task instances)"
    )
    seeded = history.seed(db_url)
    rows = history.counts(db_url)
    print(f"  history written in {seeded.seconds:.0f} s: {rows}", flush=True)
    if options.warmup:
        workloads.w1(http)
    empty = [f["transition_ms_p50"] for f in samples.figures.get("W1", [])]
    for rep in range(options.repeat):
        time.sleep(SETTLE_S)
        result = workloads.w1(http)
        figures = dict(result.figures)
        if empty:
            figures["p50_vs_empty"] = figures["transition_ms_p50"] / statistics.median(empty)
        samples.add("W4", figures, {"runs": result.runs, "history": rows})
        print(f"  rep {rep + 1}/{options.repeat} W4: {brief(figures)}", flush=True)
    table_rows = ", ".join(f"{name} {count:,}" for name, count in rows.items())
    return (
        f"W4's history was written after the other workloads' repetitions, in {seeded.seconds:.0f} s "
        f"(`benchmarks/history.py`); rows then: {table_rows}. Its p50 multiple is against W1's median "
        "p50 above (the same server, before the history)."
    )


def brief(figures: dict[str, float]) -> str:
    return ", ".join(f"{k}={report.fmt(v)}" for k, v in list(figures.items())[:5])


def add_multiples(samples: Samples) -> None:
    """transition p50 / W0 floors, pairing repetition i of each workload with repetition i of W0."""
    floors = samples.figures.get("W0", [])
    for name in ("W1a", "W1"):
        for i, figures in enumerate(samples.figures.get(name, [])):
            if not floors:
                break
            w0 = floors[i % len(floors)]
            figures["p50_x_commit"] = figures["transition_ms_p50"] * 1000 / w0["commit_us"]
            figures["p50_x_pipe"] = figures["transition_ms_p50"] * 1000 / w0["pipe_round_trip_us"]
            if "broker_round_trip_us" in w0:
                figures["p50_x_broker"] = figures["transition_ms_p50"] * 1000 / w0["broker_round_trip_us"]


def code_version() -> str:
    """The commit measured, and whether `zonda/` had uncommitted changes (read-only git commands)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--", "zonda"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return f"commit {commit}" + (", with uncommitted changes under zonda/" if changed else ", zonda/ clean")


def workers_text(config: Config, options: Options) -> str:
    if config.broker is None:
        return f"{options.workers} local workers"
    return (
        "Celery workers started by the benchmark (`zonda worker --queues default -c N`: N slot processes, "
        "each a Celery worker with a `threads` pool of one, at `ZONDA_WORKER_NICE` (10); they get the broker URL and the shared "
        "artifact and log folders, not the DB URL)"
    )


def celery_notes(config: Config, options: Options) -> tuple[dict[str, str], list[str]]:
    """Per-workload title notes and a bullet line saying which worker ran what, in which order."""
    if config.broker is None:
        return {}, []
    plan = passes(config, options, [w for w in options.workloads if w != "W0"])
    titled: dict[str, str] = {}
    steps: list[str] = []
    for number, step in enumerate(plan, start=1):
        worker = f"one `zonda worker -c {step.concurrency}` (bench-w{number})"
        titled |= {w: worker for w in step.workloads}
        warm = "a warm-up, then " if options.warmup else ""
        steps.append(f"{worker}: {warm}{options.repeat} repetition(s) of {', '.join(step.workloads)}")
    lines = [
        "Workers, in this order, each stopped before the next started: " + "; ".join(steps) + ". "
        "Targets: the issue's for Celery (W1 p50 <= 20 ms, p99 <= 100 ms; W2 >= 500 tasks/s with 2 "
        "worker processes); W1a, W1r3 and W3 have none there.",
    ]
    return titled, lines


def versions_text(db_text: str, broker: brokers.Broker | None) -> str:
    if broker is None:
        return db_text
    return (
        f"{db_text}; {broker.version}; Celery {package_version('celery')}, kombu {package_version('kombu')}"
    )


def load_note(config: Config) -> str:
    if config.broker is not None:
        return (
            "the work of the PostgreSQL server, of the broker and of the `zonda worker` slot processes "
            "counts as other processes (the slots are forked by a fork server that nothing waits for, so "
            "their CPU time never reaches this benchmark's own)"
        )
    return "the PostgreSQL server's work counts as other processes" if config.db == "postgres" else ""


def run_config(options: Options, config: Config, stamp: str) -> report.ConfigReport:
    print(f"== {report.CONFIG_TITLES[config.name]}", flush=True)
    if options.wait_quiet > 0:
        share = load.wait_quiet(options.wait_quiet)
        print(f"  machine {100 * share:.0f}% busy before starting", flush=True)
    meter = load.LoadMeter.start()
    code = code_version()
    samples = Samples()
    with database(config.db) as (db_url, pg_url), broker_for(config, options.redis_db) as broker:
        versions = versions_text(db_version(config.db, pg_url), broker)
        if "W0" in options.workloads:
            for rep in range(options.repeat):
                figures = floor.measure(config.db, pg_url, broker.url if broker is not None else None)
                samples.add("W0", figures, {})
                print(f"  rep {rep + 1}/{options.repeat} W0: {brief(figures)}", flush=True)
        logs = RESULTS / f"{stamp}-{config.name}-logs"
        w4_notes = measure_server(options, config, db_url, broker, samples, logs)
    add_multiples(samples)
    machine_load = meter.result()
    code_after = code_version()
    code = code if code_after == code else f"{code} at the start, {code_after} at the end"
    raw_path = RESULTS / f"{stamp}-{config.name}.json"
    titled, notes = celery_notes(config, options)
    result = report.ConfigReport(
        config=config.name,
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command=options.command,
        repeat=options.repeat,
        workers=workers_text(config, options),
        warmup=options.warmup,
        duration_s=machine_load["wall_s"],
        machine=report.machine(),
        versions=versions,
        load=machine_load,
        spreads={w: stats.spread(samples.figures[w]) for w in options.workloads if w in samples.figures},
        raw_path=str(raw_path.relative_to(ROOT)),
        load_note=load_note(config),
        workload_notes=titled,
        notes=notes + w4_notes,
        code=code,
    )
    save_raw(raw_path, result, samples)
    return result


def save_raw(path: Path, result: report.ConfigReport, samples: Samples) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"report": asdict(result), "repetitions": samples.raw}
    path.write_text(json.dumps(payload, indent=1, default=str))


def exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so the server, the workers, the DB and the broker namespace are
    cleaned up."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    began = time.monotonic()
    reports = [run_config(options, config, stamp) for config in options.configs]
    print()
    for result in reports:
        print(report.terminal(result))
    report.update_doc(options.out, reports)
    print(f"wrote {options.out}; total {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
