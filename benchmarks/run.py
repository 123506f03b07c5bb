"""Run the BENCHMARKS.md workloads on each DB configuration and write docs/benchmarks.md.

python -m benchmarks.run [--db sqlite|postgres|all] [--repeat N] [--workloads W0,W1a,W1,W2,W3]
                         [--workers 16] [--out docs/benchmarks.md] [--no-warmup]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from benchmarks import floor, load, report, server, stats, workloads

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
ALL_WORKLOADS = ("W0", "W1a", "W1", "W2", "W3")
SETTLE_S = 0.5


@dataclass
class Options:
    dbs: list[str]
    repeat: int
    workloads: list[str]
    workers: int
    out: Path
    warmup: bool
    wait_quiet: float
    command: str


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
    parser.add_argument("--db", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workloads", default=",".join(ALL_WORKLOADS))
    parser.add_argument("--workers", type=int, default=16)
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
    dbs = ["sqlite", "postgres"] if args.db == "all" else [args.db]
    argv_text = " ".join(sys.argv[1:] if argv is None else argv)
    command = f"python -m benchmarks.run {argv_text}".strip()
    return Options(
        dbs, max(1, args.repeat), chosen, args.workers, args.out, args.warmup, args.wait_quiet, command
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


def warm_up(http: Any, chosen: list[str]) -> None:
    """One untimed round so every worker has imported the DAG modules (long-lived workers)."""
    for name in ("W1", "W2", "W3"):
        if name in chosen or (name == "W1" and "W1a" in chosen):
            workloads.WORKLOADS[name](http)


def measure_server(options: Options, db_url: str, samples: Samples) -> None:
    server_workloads = [w for w in options.workloads if w != "W0"]
    if not server_workloads:
        return
    with server.running_server(db_url, options.workers) as srv, workloads.client(srv.url) as http:
        if options.warmup:
            warm_up(http, server_workloads)
        for rep in range(options.repeat):
            for name in server_workloads:
                time.sleep(SETTLE_S)
                result = workloads.WORKLOADS[name](http)
                samples.add(name, result.figures, {"runs": result.runs, **result.extra})
                print(f"  rep {rep + 1}/{options.repeat} {name}: {brief(result.figures)}", flush=True)


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


def run_config(options: Options, db: str, stamp: str) -> report.ConfigReport:
    print(f"== {report.CONFIG_TITLES[db]}", flush=True)
    if options.wait_quiet > 0:
        share = load.wait_quiet(options.wait_quiet)
        print(f"  machine {100 * share:.0f}% busy before starting", flush=True)
    meter = load.LoadMeter.start()
    samples = Samples()
    with database(db) as (db_url, pg_url):
        version = db_version(db, pg_url)
        if "W0" in options.workloads:
            for rep in range(options.repeat):
                figures = floor.measure(db, pg_url)
                samples.add("W0", figures, {})
                print(f"  rep {rep + 1}/{options.repeat} W0: {brief(figures)}", flush=True)
        measure_server(options, db_url, samples)
    add_multiples(samples)
    machine_load = meter.result()
    raw_path = RESULTS / f"{stamp}-{db}.json"
    result = report.ConfigReport(
        db=db,
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command=options.command,
        repeat=options.repeat,
        workers=options.workers,
        warmup=options.warmup,
        duration_s=machine_load["wall_s"],
        machine=report.machine(),
        db_version=version,
        load=machine_load,
        spreads={w: stats.spread(samples.figures[w]) for w in options.workloads if w in samples.figures},
        raw_path=str(raw_path.relative_to(ROOT)),
    )
    save_raw(raw_path, result, samples)
    return result


def save_raw(path: Path, result: report.ConfigReport, samples: Samples) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"report": asdict(result), "repetitions": samples.raw}
    path.write_text(json.dumps(payload, indent=1, default=str))


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    began = time.monotonic()
    reports = [run_config(options, db, stamp) for db in options.dbs]
    print()
    for result in reports:
        print(report.terminal(result))
    report.update_doc(options.out, reports)
    print(f"wrote {options.out}; total {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
