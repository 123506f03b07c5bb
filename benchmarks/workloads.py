"""W1a, W1, W1r3, W2 and W3 against a running server, through its REST API. Each returns its figures
(named floats, from Zonda's recorded times) and the raw run records they were computed from."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from benchmarks import stats
from benchmarks.stats import RunRecord

W1_RUNS = 20
W3_TRIGGERS = 20
FANOUT = 1000
RUN_TIMEOUT = 600.0
POLL_INTERVAL = 0.1
W3_POLL_INTERVAL = 0.01
W3_FIRST_POLL_S = 0.025
_user_ids = itertools.count(1)


@dataclass
class Result:
    """One repetition of one workload."""

    figures: dict[str, float]
    runs: list[RunRecord] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Triggered:
    run_id: str
    sent_at: datetime


TENANT = "default"
"""The tenant of the server's DAG folder (`zonda up`'s embedded tenant); DAG ids are `tenant/name`."""
ONBOARDING = f"{TENANT}/onboarding_40x20"
ONBOARDING_R3 = f"{TENANT}/onboarding_40x20_r3"
FANOUT_DAG = f"{TENANT}/fanout_1000"
ONE_TASK = f"{TENANT}/one_task"


def client(base_url: str, token: str = "") -> httpx.Client:
    """An HTTP client for the workloads (`token`: an API token, sent as a bearer token)."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base_url, timeout=60.0, limits=limits, headers=headers)


def trigger(http: httpx.Client, dag_id: str, params: dict[str, Any], key: str | None = None) -> Triggered:
    """POST a run; `sent_at` is the client's clock just before the request goes out."""
    sent_at = datetime.now(UTC)
    response = http.post(f"/api/v1/dags/{dag_id}/runs", json={"params": params, "key": key})
    response.raise_for_status()
    return Triggered(response.json()["run_id"], sent_at)


def wait_finished(http: httpx.Client, dag_id: str, triggered: Sequence[Triggered]) -> list[RunRecord]:
    """Poll the run list until every run ended; then fetch each run's full record."""
    wanted = {t.run_id for t in triggered}
    since = min(t.sent_at for t in triggered) - timedelta(seconds=5)
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        page = http.get(
            "/api/v1/runs", params={"dag_id": dag_id, "created_after": since.isoformat(), "limit": 500}
        )
        page.raise_for_status()
        done = {r["run_id"] for r in page.json()["runs"] if r["state"] in ("success", "failed")}
        if wanted <= done:
            return [get_run(http, t.run_id) for t in triggered]
        time.sleep(POLL_INTERVAL)
    raise TimeoutError(f"{dag_id}: runs not finished after {RUN_TIMEOUT:.0f} s")


def get_run(http: httpx.Client, run_id: str) -> RunRecord:
    response = http.get(f"/api/v1/runs/{run_id}")
    response.raise_for_status()
    record: RunRecord = response.json()
    return record


def onboarding_params() -> tuple[dict[str, Any], str]:
    user_id = next(_user_ids)
    return {"user_id": user_id}, f"user-{user_id}"


def w1a(http: httpx.Client) -> Result:
    """One onboarding_40x20 run with nothing else running."""
    params, key = onboarding_params()
    runs = wait_finished(http, ONBOARDING, [trigger(http, ONBOARDING, params, key)])
    stats.check_success(runs)
    figures = stats.summary(stats.transitions_ms(runs[0]), "transition_ms")
    figures["makespan_ms"] = stats.makespan_ms(runs[0])
    figures |= stats.parts_summary(runs)
    return Result(figures, runs)


def trigger_together(http: httpx.Client, count: int, make: Callable[[], Triggered]) -> list[Triggered]:
    """`count` triggers released at the same moment from `count` threads."""
    barrier = threading.Barrier(count)

    def one() -> Triggered:
        barrier.wait()
        return make()

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(one) for _ in range(count)]
        return [f.result() for f in futures]


def w1(http: httpx.Client) -> Result:
    """20 onboarding_40x20 runs triggered at the same moment, distinct user_id and key."""
    return twenty_runs(http, ONBOARDING)


def w1r3(http: httpx.Client) -> Result:
    """W1 on onboarding_40x20_r3: the same 20 runs, at most 3 under way at once."""
    return twenty_runs(http, ONBOARDING_R3)


def twenty_runs(http: httpx.Client, dag_id: str) -> Result:
    """W1's figures for 20 runs of `dag_id` triggered at the same moment, distinct user_id and key."""

    def make() -> Triggered:
        params, key = onboarding_params()
        return trigger(http, dag_id, params, key)

    triggered = trigger_together(http, W1_RUNS, make)
    runs = wait_finished(http, dag_id, triggered)
    stats.check_success(runs)
    transitions = [ms for run in runs for ms in stats.transitions_ms(run)]
    makespans = [stats.makespan_ms(run) for run in runs]
    first_sent = min(t.sent_at for t in triggered)
    figures = stats.summary(transitions, "transition_ms")
    figures |= {
        "makespan_ms_p50": stats.percentile(makespans, 50),
        "makespan_ms_p95": stats.percentile(makespans, 95),
        "makespan_ms_max": max(makespans),
        "wall_s": (max(stats.last_end(r) for r in runs) - first_sent).total_seconds(),
        "trigger_spread_ms": stats.ms((max(t.sent_at for t in triggered) - first_sent).total_seconds()),
    }
    figures |= stats.parts_summary(runs)
    return Result(figures, runs)


def w2(http: httpx.Client) -> Result:
    """fanout_1000: tasks/s = 1000 / (start(join) - end(start))."""
    runs = wait_finished(http, FANOUT_DAG, [trigger(http, FANOUT_DAG, {})])
    stats.check_success(runs)
    run = runs[0]
    start_end = stats.ts(stats.first_task(run, "start")["ended_at"])
    join_start = stats.ts(stats.first_task(run, "join")["started_at"])
    mapped = [t for t in run["tasks"] if t["task_id"] == "work"]
    if len(mapped) != FANOUT:
        raise ValueError(f"fanout_1000 ran {len(mapped)} mapped instances, expected {FANOUT}")
    seconds = (join_start - start_end).total_seconds()
    figures = {
        "tasks_per_s": FANOUT / seconds,
        "fanout_s": seconds,
        "makespan_ms": stats.makespan_ms(run),
    }
    return Result(figures, runs)


def w3(http: httpx.Client) -> Result:
    """one_task triggered 20 times in sequence; trigger sent (client clock) -> task started_at."""
    parts: dict[str, list[float]] = {"total": [], "api": [], "pickup": [], "start": []}
    runs: list[RunRecord] = []
    for n in range(W3_TRIGGERS):
        sent = trigger(http, ONE_TASK, {"n": n})
        run = wait_one(http, sent.run_id)
        runs.append(run)
        for name, value in w3_parts(sent, run).items():
            parts[name].append(value)
    stats.check_success(runs)
    figures = {
        "trigger_to_start_ms_p50": stats.percentile(parts["total"], 50),
        "trigger_to_start_ms_p95": stats.percentile(parts["total"], 95),
        "trigger_to_start_ms_max": max(parts["total"]),
        **{f"{name}_ms_p50": stats.percentile(parts[name], 50) for name in ("api", "pickup", "start")},
    }
    return Result(figures, runs, {"latencies_ms": parts})


def w3_parts(sent: Triggered, run: RunRecord) -> dict[str, float]:
    """Trigger sent -> started, and its parts: -> run created (API), -> queued (scheduler), -> started."""
    task = run["tasks"][0]
    created, queued, started = (
        stats.ts(v) for v in (run["created_at"], task["queued_at"], task["started_at"])
    )
    return {
        "total": stats.ms((started - sent.sent_at).total_seconds()),
        "api": stats.ms((created - sent.sent_at).total_seconds()),
        "pickup": stats.ms((queued - created).total_seconds()),
        "start": stats.ms((started - queued).total_seconds()),
    }


def wait_one(http: httpx.Client, run_id: str) -> RunRecord:
    """Poll one (small) run until it ended; the first look only after W3_FIRST_POLL_S, so that polling
    does not compete for the CPU with the trigger -> start path being measured."""
    time.sleep(W3_FIRST_POLL_S)
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        run = get_run(http, run_id)
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(W3_POLL_INTERVAL)
    raise TimeoutError(f"run {run_id} not finished after {RUN_TIMEOUT:.0f} s")


WORKLOADS: dict[str, Callable[[httpx.Client], Result]] = {
    "W1a": w1a,
    "W1": w1,
    "W1r3": w1r3,
    "W2": w2,
    "W3": w3,
}
