"""Latency figures from recorded times, without I/O: percentiles, time buckets, transition latency.

Times are POSIX seconds (floats) so that a window of 100k task instances is cheap to reduce;
figures are in milliseconds. Percentiles use linear interpolation between the closest ranks
(numpy's default, the method of the benchmarks), so the dashboard and `docs/benchmarks.md` agree.

Transition latency is the definition of the benchmarks (W1): for each task instance with upstream
tasks, its start minus the latest end of its upstream tasks' instances (every map index of a mapped
upstream). Its start is its first attempt's start at or after that moment: a retry's start would
add the task's own retry delay, and after a clear the earlier attempts belong to the earlier round.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from zonda.core.spec import DagSpec
from zonda.core.states import TriggerRule
from zonda.errors import ParamsError

BUCKETS: Mapping[str, int] = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400}
"""Bucket names and their lengths in seconds, smallest first."""

MAX_BUCKETS = 200
"""A series has at most this many buckets: enough for a chart, small enough to answer fast."""

EARLY_RULES = frozenset({TriggerRule.ALWAYS, TriggerRule.ONE_SUCCESS, TriggerRule.ONE_FAILED})
"""Trigger rules that may start a task before all its upstream tasks end: no transition to measure."""


def percentile(ordered: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) of sorted `ordered`, interpolating linearly between closest ranks."""
    if not ordered:
        raise ValueError("percentile of no values")
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Summary:
    """How many values, their p50/p95/p99 and max (None when there are no values)."""

    count: int = 0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None


def summarize(values: Iterable[float]) -> Summary:
    """The Summary of `values`, rounded to 3 decimals (microseconds, for values in milliseconds)."""
    ordered = sorted(values)
    if not ordered:
        return Summary()
    p50, p95, p99 = (round(percentile(ordered, p), 3) for p in (50, 95, 99))
    return Summary(len(ordered), p50, p95, p99, round(ordered[-1], 3))


@dataclass(frozen=True, slots=True)
class Window:
    """The span [since, until) cut into buckets of `size` seconds aligned on multiples of `size` (UTC)."""

    since: float
    until: float
    size: int
    origin: float = field(init=False)
    count: int = field(init=False)

    def __post_init__(self) -> None:
        origin = math.floor(self.since / self.size) * self.size
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "count", max(1, math.ceil((self.until - origin) / self.size)))

    def index(self, t: float) -> int | None:
        """The bucket of time `t`, or None outside the window."""
        if t < self.since or t >= self.until:
            return None
        return int((t - self.origin) // self.size)

    def start(self, i: int) -> float:
        return self.origin + i * self.size

    def span(self, i: int) -> float:
        """Seconds of bucket `i` inside the window (the first and last may be cut by it)."""
        return min(self.start(i) + self.size, self.until) - max(self.start(i), self.since)


def choose_bucket(since: float, until: float, requested: str | None) -> tuple[str, Window]:
    """The bucket asked for, or the smallest with at most MAX_BUCKETS; ParamsError for a bad one or window."""
    if until <= since:
        raise _params_error("since", "since must be before until")
    if requested is not None and requested not in BUCKETS:
        raise _params_error("bucket", f"bucket '{requested}' is not one of {', '.join(BUCKETS)}")
    for name in [requested] if requested else list(BUCKETS):
        window = Window(since, until, BUCKETS[name])
        if window.count <= MAX_BUCKETS:
            return name, window
    raise _params_error(
        "bucket",
        f"this window would make more than {MAX_BUCKETS} buckets of {requested or '1d'}; "
        "choose a larger bucket or a shorter window",
    )


def _params_error(param: str, message: str) -> ParamsError:
    return ParamsError(message, [{"param": param, "message": message}])


def epoch(value: datetime) -> float:
    """POSIX seconds of an aware datetime."""
    return value.timestamp()


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# -- transitions ------------------------------------------------------------------------------


class Attempt(NamedTuple):
    """An earlier attempt of a task instance: when it was queued and when it started (None if never)."""

    queued: float | None
    started: float | None


class InstanceTimes(NamedTuple):
    """A task instance with its latest attempt's times; `ended` is None until it finished."""

    task_id: str
    map_index: int = -1
    queued: float | None = None
    started: float | None = None
    ended: float | None = None


Instance = tuple[str, int, float | None, float | None, float | None]
"""An InstanceTimes as a plain tuple: the database's rows are used as they come (a window holds
100k of them), and the functions below unpack them, which is the fastest way to read them."""


Earlier = Mapping[tuple[str, int], Sequence[Attempt]]
"""Attempts before each instance's latest, by (task id, map index), in try order. It may name
instances that no longer exist (a clear removed the map indexes of a mapped task)."""


def measured_upstreams(spec: DagSpec) -> dict[str, tuple[str, ...]]:
    """Each task's upstream task ids, for the tasks whose transition is measured (EARLY_RULES excluded)."""
    return {t.task_id: t.upstream for t in spec.tasks if t.upstream and t.trigger_rule not in EARLY_RULES}


def task_ends(instances: Iterable[Instance]) -> dict[str, float | None]:
    """Each task's end: the latest end over its instances (map indexes); None if one has not ended."""
    ends: dict[str, float | None] = {}
    for task_id, _, _, _, ended in instances:
        known = ends.get(task_id, -math.inf)
        if known is not None and (ended is None or ended > known):
            ends[task_id] = ended
    return ends


def transition_start(starts: Iterable[float | None], ready: float) -> float | None:
    """The first start at or after `ready`; else (clocks apart) the latest start; None if it never started."""
    known = sorted(s for s in starts if s is not None)
    if not known:
        return None
    return next((s for s in known if s >= ready), known[-1])


def transitions(
    instances: Sequence[Instance], earlier: Earlier, upstream: Mapping[str, Sequence[str]]
) -> list[tuple[float, float]]:
    """(start, latency in seconds) for each started instance of `upstream`'s tasks whose upstreams all ended."""
    ends = task_ends(instances)
    out: list[tuple[float, float]] = []
    for task_id, map_index, _, started, _ in instances:
        ups = upstream.get(task_id)
        if not ups:
            continue
        ready = -math.inf
        for u in ups:
            end = ends.get(u)
            if end is None:
                break
            ready = max(ready, end)
        else:
            before = earlier.get((task_id, map_index)) if earlier else None
            start = (
                started
                if before is None
                else transition_start([*(a.started for a in before), started], ready)
            )
            if start is not None:
                out.append((start, start - ready))
    return out


def queue_waits(instances: Iterable[Instance], earlier: Earlier) -> list[tuple[float, float]]:
    """(start, seconds from queued to started) for every attempt that started."""
    latest = [(s, s - q) for _, _, q, s, _ in instances if s is not None and q is not None]
    return latest + [
        (a.started, a.started - a.queued)
        for attempts in earlier.values()
        for a in attempts
        if a.started is not None and a.queued is not None
    ]


def task_ends_of_runs(instances: Iterable[Instance], earlier: Earlier) -> list[float]:
    """The end of each instance that ran (started at least once) and finished."""
    return [
        ended
        for task_id, map_index, _, started, ended in instances
        if ended is not None and (started is not None or (task_id, map_index) in earlier)
    ]


# -- aggregation ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunTimes:
    """One run as the figures see it: ids, times, whether it failed, its instances."""

    run_id: str
    tenant_id: str
    dag_id: str
    created: float
    started: float | None
    ended: float | None
    failed: bool
    instances: Sequence[Instance] = ()
    earlier: Earlier = field(default_factory=dict)


@dataclass(slots=True)
class Sample:
    """Raw values (in ms) and counts of one scope over one span (the window or a bucket)."""

    transition: list[float] = field(default_factory=list)
    queue_wait: list[float] = field(default_factory=list)
    run_duration: list[float] = field(default_factory=list)
    run_execution: list[float] = field(default_factory=list)
    runs_ended: int = 0
    runs_failed: int = 0
    tasks_ended: int = 0


@dataclass(frozen=True, slots=True)
class Figures:
    """The reduced figures of one Sample over a span of `seconds`."""

    transition_ms: Summary
    queue_wait_ms: Summary
    run_duration_ms: Summary
    run_execution_ms: Summary
    runs_ended: int
    runs_failed: int
    failure_rate: float | None
    tasks_ended: int
    tasks_per_minute: float
    runs_per_hour: float


def figures(sample: Sample, seconds: float) -> Figures:
    """Percentiles, failure rate and throughput of `sample` over `seconds` of time."""
    rate = sample.runs_failed / sample.runs_ended if sample.runs_ended else None
    return Figures(
        transition_ms=summarize(sample.transition),
        queue_wait_ms=summarize(sample.queue_wait),
        run_duration_ms=summarize(sample.run_duration),
        run_execution_ms=summarize(sample.run_execution),
        runs_ended=sample.runs_ended,
        runs_failed=sample.runs_failed,
        failure_rate=round(rate, 6) if rate is not None else None,
        tasks_ended=sample.tasks_ended,
        tasks_per_minute=round(sample.tasks_ended * 60.0 / seconds, 6),
        runs_per_hour=round(sample.runs_ended * 3600.0 / seconds, 6),
    )


@dataclass(slots=True)
class Placed:
    """Values with the bucket each fell in (`at[k]` is the bucket of `values[k]`)."""

    at: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def extend(self, other: Placed) -> None:
        self.at += other.at
        self.values += other.values

    def by_bucket(self) -> dict[int, list[float]]:
        out: dict[int, list[float]] = {}
        for i, value in zip(self.at, self.values, strict=True):
            out.setdefault(i, []).append(value)
        return out


_METRICS = ("transition", "queue_wait", "run_duration", "run_execution")


@dataclass(slots=True)
class Series:
    """What one scope (everything, a tenant, a DAG) did in the window, each value placed in its bucket."""

    transition: Placed = field(default_factory=Placed)
    queue_wait: Placed = field(default_factory=Placed)
    run_duration: Placed = field(default_factory=Placed)
    run_execution: Placed = field(default_factory=Placed)
    runs_ended: list[int] = field(default_factory=list)
    runs_failed: list[int] = field(default_factory=list)
    tasks_ended: list[int] = field(default_factory=list)

    def merge(self, other: Series) -> None:
        for name in _METRICS:
            getattr(self, name).extend(getattr(other, name))
        self.runs_ended += other.runs_ended
        self.runs_failed += other.runs_failed
        self.tasks_ended += other.tasks_ended

    def total(self) -> Sample:
        """The whole window's sample."""
        return Sample(
            transition=self.transition.values,
            queue_wait=self.queue_wait.values,
            run_duration=self.run_duration.values,
            run_execution=self.run_execution.values,
            runs_ended=len(self.runs_ended),
            runs_failed=len(self.runs_failed),
            tasks_ended=len(self.tasks_ended),
        )

    def buckets(self) -> dict[int, Sample]:
        """Each non-empty bucket's sample."""
        out: dict[int, Sample] = {}
        for name in _METRICS:
            for i, values in getattr(self, name).by_bucket().items():
                setattr(out.setdefault(i, Sample()), name, values)
        for name in ("runs_ended", "runs_failed", "tasks_ended"):
            for i in getattr(self, name):
                sample = out.setdefault(i, Sample())
                setattr(sample, name, getattr(sample, name) + 1)
        return out


def collect(run: RunTimes, upstream: Mapping[str, Sequence[str]], window: Window, into: Series) -> None:
    """Add what `run` did inside `window` to `into`: a transition and a queue wait are placed by the
    task's start, a task by its end, a run (its duration, whether it failed) by its end.

    The bucket arithmetic of `Window.index` is inlined: this runs once per value of the window.
    """
    since, until, origin, size = window.since, window.until, window.origin, window.size
    for placed, pairs in (
        (into.transition, transitions(run.instances, run.earlier, upstream)),
        (into.queue_wait, queue_waits(run.instances, run.earlier)),
    ):
        inside = [(int((t - origin) // size), v * 1000.0) for t, v in pairs if since <= t < until]
        placed.at.extend(i for i, _ in inside)
        placed.values.extend(v for _, v in inside)
    ends = task_ends_of_runs(run.instances, run.earlier)
    into.tasks_ended.extend(int((t - origin) // size) for t in ends if since <= t < until)
    if run.ended is None or (i := window.index(run.ended)) is None:
        return
    into.runs_ended.append(i)
    if run.failed:
        into.runs_failed.append(i)
    into.run_duration.at.append(i)
    into.run_duration.values.append((run.ended - run.created) * 1000.0)
    if run.started is not None:
        into.run_execution.at.append(i)
        into.run_execution.values.append((run.ended - run.started) * 1000.0)
