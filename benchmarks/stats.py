"""Figures from Zonda's run records: transition latencies, makespans, percentiles, min/median/max."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

RunRecord = Mapping[str, Any]


def ts(value: str) -> datetime:
    """An API timestamp (ISO 8601 UTC, e.g. 2026-11-22T18:17:00.000123Z) as an aware datetime."""
    return datetime.fromisoformat(value)


def ms(delta_seconds: float) -> float:
    return delta_seconds * 1000.0


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], prefix: str) -> dict[str, float]:
    """p50/p95/p99/max of `values` under `prefix`_p50 etc."""
    return {
        f"{prefix}_p50": percentile(values, 50),
        f"{prefix}_p95": percentile(values, 95),
        f"{prefix}_p99": percentile(values, 99),
        f"{prefix}_max": max(values) if values else math.nan,
    }


def ended_by_task(run: RunRecord) -> dict[str, datetime]:
    """Each task id's end time: the latest end over its map indexes (a mapped task ends with its last)."""
    ends: dict[str, datetime] = {}
    for t in run["tasks"]:
        if t["ended_at"] is None:
            raise ValueError(f"run {run['run_id']}: task {t['task_id']}[{t['map_index']}] has not ended")
        end = ts(t["ended_at"])
        if t["task_id"] not in ends or end > ends[t["task_id"]]:
            ends[t["task_id"]] = end
    return ends


def transitions_ms(run: RunRecord) -> list[float]:
    """start(task) - max(end(upstreams)) in ms, for every task instance that has upstreams."""
    ends = ended_by_task(run)
    out: list[float] = []
    for t in run["tasks"]:
        if not t["upstream"]:
            continue
        ready = max(ends[u] for u in t["upstream"])
        out.append(ms((ts(t["started_at"]) - ready).total_seconds()))
    return out


def transition_parts_ms(run: RunRecord) -> tuple[list[float], list[float]]:
    """The two halves of each transition: max(end(upstreams)) -> queued_at (the scheduler noticed and
    dispatched; queued_at is the time its loop woke up) and queued_at -> started_at (to the worker)."""
    ends = ended_by_task(run)
    react: list[float] = []
    dispatch: list[float] = []
    for t in run["tasks"]:
        if not t["upstream"] or t["queued_at"] is None:
            continue
        ready = max(ends[u] for u in t["upstream"])
        queued = ts(t["queued_at"])
        react.append(ms((queued - ready).total_seconds()))
        dispatch.append(ms((ts(t["started_at"]) - queued).total_seconds()))
    return react, dispatch


def parts_summary(runs: Iterable[RunRecord]) -> dict[str, float]:
    react: list[float] = []
    dispatch: list[float] = []
    for run in runs:
        r, d = transition_parts_ms(run)
        react += r
        dispatch += d
    return {
        "react_ms_p50": percentile(react, 50),
        "react_ms_p95": percentile(react, 95),
        "dispatch_ms_p50": percentile(dispatch, 50),
        "dispatch_ms_p95": percentile(dispatch, 95),
    }


def last_end(run: RunRecord) -> datetime:
    return max(ended_by_task(run).values())


def makespan_ms(run: RunRecord) -> float:
    """Run created -> last task ended, in ms."""
    return ms((last_end(run) - ts(run["created_at"])).total_seconds())


def first_task(run: RunRecord, task_id: str) -> RunRecord:
    return next(t for t in run["tasks"] if t["task_id"] == task_id)


def check_success(runs: Iterable[RunRecord]) -> None:
    """ValueError naming the first run that did not succeed (its figures would mean nothing)."""
    for run in runs:
        if run["state"] != "success":
            failed = [t["task_id"] for t in run["tasks"] if t["state"] != "success"]
            raise ValueError(f"run {run['run_id']} of {run['dag_id']} ended {run['state']}: {failed[:5]}")


def spread(samples: Sequence[Mapping[str, float]]) -> dict[str, tuple[float, float, float]]:
    """For each figure present in every sample: (min, median, max) over the repetitions."""
    if not samples:
        return {}
    names = [n for n in samples[0] if all(n in s for s in samples)]
    out: dict[str, tuple[float, float, float]] = {}
    for name in names:
        values = [float(s[name]) for s in samples]
        out[name] = (min(values), statistics.median(values), max(values))
    return out
