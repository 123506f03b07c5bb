"""Tenant quota isolation: tenant B's W1 transition latency alone, then while tenant A saturates its quota.

python -m benchmarks.quota [--db sqlite|postgres|all] [--repeat 3] [--workers 16] [--quota 4]
                           [--out docs/benchmarks.md] [--wait-quiet 600]

One server per DB with two tenants: `team-b` (no quota, the benchmark DAGs) and `team-a`
(`max_running_tasks=--quota`, a DAG of `A_TASKS` sleeping tasks, far more than its quota can run
during the measurement). Each repetition measures B's W1 (20 onboarding_40x20 runs at once) and
W1a (one run) alone, then again after A's load has started; it checks from A's recorded times that
A ran exactly at its quota during B's measurement. Figures go to the section between
`<!-- results:quota:begin -->` and `<!-- results:quota:end -->` of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks import load, stats, workloads
from benchmarks.server import (
    DAGS_FOLDER,
    ROOT,
    free_port,
    postgres_database,
    server_log,
    sqlalchemy_url,
    stop,
)
from benchmarks.server import Server as BenchServer

BEGIN, END = "<!-- results:quota:begin -->", "<!-- results:quota:end -->"
A, B = "team-a", "team-b"
A_TASKS = 400
A_TASK_S = 0.1
START_TIMEOUT = 120.0
SETTLE_S = 2.0
"""Pause before each measurement, so that the previous phase's tail (A's last reports, the run's end,
workers changing tenant) is not measured as part of the next one."""

SATURATE = f'''"""Tenant A's load: {A_TASKS} independent tasks of {A_TASK_S} s, far more than its quota runs at once."""

import time

from zonda import dag, task


@task
def hold(i: int) -> int:
    time.sleep({A_TASK_S})
    return i


@dag(max_active_tasks={A_TASKS})
def saturate() -> None:
    hold.map(i=list(range({A_TASKS})))
'''


@dataclass
class Sample:
    """One repetition: B's figures alone and under A's load, and what A did meanwhile."""

    alone: dict[str, float]
    loaded: dict[str, float]
    switched: dict[str, float]
    """B's W1 right after A's load: it takes back the workers A held (a new worker process each)."""
    a_peak: int = 0
    a_saturated: bool = False


@dataclass
class Outcome:
    db: str
    quota: int
    workers: int
    samples: list[Sample] = field(default_factory=list)
    machine: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def quota_server(db_url: str, workers: int, quota: int) -> Iterator[httpx.Client]:
    """A fresh server with tenants A (quota, saturating DAG) and B (the benchmark DAGs); an admin client."""
    home = Path(tempfile.mkdtemp(prefix="zonda-quota-"))
    (home / "team-a").mkdir()
    (home / "team-a" / "saturate.py").write_text(SATURATE)
    port = free_port()
    command = [
        sys.executable,
        *("-m", "benchmarks._server", "--home", str(home), "--dags", str(DAGS_FOLDER)),
        *("--db-url", db_url, "--port", str(port), "--workers", str(workers)),
    ]
    with (home / "server.out").open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    server = BenchServer(f"http://127.0.0.1:{port}", port, process, home, db_url)
    try:
        token = _wait_for_token(server)
        http = workloads.client(server.url)
        http.headers["Authorization"] = f"Bearer {token}"
        with http:
            _create_tenant(http, A, [str(home / "team-a")], quota)
            _create_tenant(http, B, [str(DAGS_FOLDER)], None)
            _wait_for_dags(server, http, {f"{A}/saturate", f"{B}/onboarding_40x20"})
            yield http
    finally:
        stop(server)
        shutil.rmtree(home, ignore_errors=True)


def _wait_for_token(server: BenchServer) -> str:
    """The admin token the server's first start writes to its home."""
    path = server.home / "token"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server_log(server)}")
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.2)
    raise RuntimeError(f"no token in {path} after {START_TIMEOUT:.0f} s:\n{server_log(server)}")


def _create_tenant(http: httpx.Client, tenant: str, folders: list[str], quota: int | None) -> None:
    body = {"tenant_id": tenant, "dag_folders": folders, "max_running_tasks": quota}
    _wait(lambda: http.get("/health").status_code == 200, "the API")
    http.post("/api/v1/tenants", json=body).raise_for_status()


def _wait_for_dags(server: BenchServer, http: httpx.Client, wanted: set[str]) -> None:
    def listed() -> bool:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited:\n{server_log(server)}")
        return wanted <= {d["dag_id"] for d in http.get("/api/v1/dags").json()}

    _wait(listed, f"DAGs {sorted(wanted)}")


def _wait(check: Any, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def b_figures(http: httpx.Client) -> tuple[dict[str, float], tuple[datetime, datetime]]:
    """B's W1 and W1a transition figures, and the window [first trigger, last end] they cover."""
    dag_id = f"{B}/onboarding_40x20"

    def make() -> workloads.Triggered:
        params, key = workloads.onboarding_params()
        return workloads.trigger(http, dag_id, params, key)

    triggered = workloads.trigger_together(http, workloads.W1_RUNS, make)
    runs = workloads.wait_finished(http, dag_id, triggered)
    single = workloads.wait_finished(http, dag_id, [make()])
    stats.check_success(runs + single)
    w1 = [ms for run in runs for ms in stats.transitions_ms(run)]
    figures = {
        "w1_p50": stats.percentile(w1, 50),
        "w1_p99": stats.percentile(w1, 99),
        "w1a_p50": stats.percentile(stats.transitions_ms(single[0]), 50),
        "w1a_p99": stats.percentile(stats.transitions_ms(single[0]), 99),
    }
    window = (min(t.sent_at for t in triggered), max(stats.last_end(r) for r in runs + single))
    return figures, window


def a_during(run: stats.RunRecord, window: tuple[datetime, datetime]) -> tuple[int, bool]:
    """A's peak concurrency, and whether A had work under way across the whole of B's window."""
    tasks = [t for t in run["tasks"] if t["started_at"] and t["ended_at"]]
    edges = sorted(
        [(stats.ts(t["started_at"]), 1) for t in tasks] + [(stats.ts(t["ended_at"]), -1) for t in tasks]
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    first = min(stats.ts(t["started_at"]) for t in tasks)
    last = max(stats.ts(t["ended_at"]) for t in tasks)
    return peak, first <= window[0] and last >= window[1]


def repetition(http: httpx.Client, quota: int) -> Sample:
    """B right after A's previous load (local workers serve one tenant each, so B takes A's workers
    back: a new worker process each), B alone, then B while A's load runs."""
    switched, _ = b_figures(http)
    time.sleep(SETTLE_S)
    alone, _ = b_figures(http)
    load = workloads.trigger(http, f"{A}/saturate", {})
    deadline = time.monotonic() + 30
    while not any(t["state"] == "running" for t in workloads.get_run(http, load.run_id)["tasks"]):
        if time.monotonic() > deadline:
            raise RuntimeError("tenant A's load did not start")
        time.sleep(0.05)
    time.sleep(SETTLE_S)
    loaded, window = b_figures(http)
    (a_run,) = workloads.wait_finished(http, f"{A}/saturate", [load])
    stats.check_success([a_run])
    peak, covered = a_during(a_run, window)
    if peak > quota:
        raise RuntimeError(f"tenant A ran {peak} tasks at once, over its quota of {quota}")
    return Sample(alone, loaded, switched, peak, covered and peak == quota)


def measure(db: str, repeat: int, workers: int, quota: int, wait_quiet: float) -> Outcome:
    outcome = Outcome(db, quota, workers)
    if wait_quiet > 0:
        print(f"machine busy {100 * load.wait_quiet(wait_quiet):.0f}% before {db}", flush=True)
    meter = load.LoadMeter.start()
    with contextlib.ExitStack() as stack:
        if db == "postgres":
            url = sqlalchemy_url(stack.enter_context(postgres_database()))
        else:
            url = f"sqlite:///{stack.enter_context(tempfile.TemporaryDirectory())}/zonda.db"
        http = stack.enter_context(quota_server(url, workers, quota))
        b_figures(http)
        for n in range(repeat):
            sample = repetition(http, quota)
            outcome.samples.append(sample)
            print(
                f"{db} #{n + 1}: alone {_brief(sample.alone)} | A at quota {_brief(sample.loaded)}",
                flush=True,
            )
    outcome.machine = meter.result()
    return outcome


def _brief(figures: dict[str, float]) -> str:
    return f"W1 p50 {figures['w1_p50']:.1f} ms p99 {figures['w1_p99']:.1f} ms"


def _median(samples: Sequence[dict[str, float]], name: str) -> str:
    values = [s[name] for s in samples]
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def section(outcomes: Sequence[Outcome], when: datetime) -> str:
    """The markdown between the quota markers."""
    first = outcomes[0]
    lines = [
        BEGIN,
        "## Tenant quota isolation",
        "",
        f"`python -m benchmarks.quota`, {when:%Y-%m-%d}, commit {_commit()}: one server with {first.workers} local",
        f"workers and two tenants. Tenant A has `max_running_tasks={first.quota}` and a run of {A_TASKS} tasks of",
        f"{A_TASK_S:g} s (many more than its quota can run while B is measured); tenant B has no quota and",
        "runs W1 (20 `onboarding_40x20` runs at once) and W1a (one run). Transition = start(task) -",
        "max(end(upstreams)), from Zonda's recorded times; median over the repetitions (min-max).",
        "",
        "| DB | B alone: W1 p50 / p99 (ms) | B while A saturates its quota: W1 p50 / p99 (ms) "
        "| B right after A's load: W1 p50 / p99 (ms) "
        "| B alone: W1a p50 | B with A: W1a p50 | A's peak running tasks | A at its quota all through |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for o in outcomes:
        alone = [s.alone for s in o.samples]
        loaded = [s.loaded for s in o.samples]
        switched = [s.switched for s in o.samples]
        saturated = sum(s.a_saturated for s in o.samples)
        lines.append(
            f"| {o.db} | {_median(alone, 'w1_p50')} / {_median(alone, 'w1_p99')} "
            f"| {_median(loaded, 'w1_p50')} / {_median(loaded, 'w1_p99')} "
            f"| {_median(switched, 'w1_p50')} / {_median(switched, 'w1_p99')} "
            f"| {_median(alone, 'w1a_p50')} | {_median(loaded, 'w1a_p50')} "
            f"| {max(s.a_peak for s in o.samples)} | {saturated} of {len(o.samples)} |"
        )
    lines += ["", *(f"- {o.db}: {load.describe(o.machine)}." for o in outcomes)]
    lines += [
        "",
        "A's quota holds (its peak never exceeds it) and B's transitions are not held behind A's",
        "waiting tasks: a tenant at its quota is parked in the scheduler's ready queue, so B's ready",
        "tasks are dispatched as if A's backlog were not there. What B still shares with A is the",
        "machine: the workers A's quota occupies and the CPU its tasks and their reports use (2 cores",
        "here for the scheduler, the API, the DB and every worker). Local workers serve one tenant",
        "each, so B's first W1 after A's load starts a new worker process for each worker it takes",
        "back from A. They are forked from a fork server that has Zonda's worker modules imported",
        "(about 6 ms each; a fresh Python process took about 200 ms, and B's p50 right after A's",
        "load was then about 110 ms).",
        END,
    ]
    return "\n".join(lines) + "\n"


def _commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown"


def write_section(out: Path, text: str) -> None:
    """Replace the quota section of `out`, or append it at the end."""
    current = out.read_text() if out.exists() else ""
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        out.write_text(head + text + tail)
        return
    out.write_text(current.rstrip("\n") + "\n\n" + text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--quota", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument(
        "--wait-quiet", type=float, default=600.0, help="Wait up to this long for a quiet machine per DB"
    )
    args = parser.parse_args(argv)
    dbs = ("sqlite", "postgres") if args.db == "all" else (args.db,)
    outcomes = [measure(db, args.repeat, args.workers, args.quota, args.wait_quiet) for db in dbs]
    write_section(args.out, section(outcomes, datetime.now(UTC)))
    print(f"wrote the quota section of {args.out}")


if __name__ == "__main__":
    main()
