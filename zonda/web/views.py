"""What the pages draw, computed from service records: state summaries, the DAG graph's layout, the
Gantt chart's bars and chart scales. Pure functions (no I/O), so each page section is one pass."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

from markupsafe import Markup, escape

from zonda.api.schemas import TaskRecord
from zonda.core.spec import DagSpec
from zonda.db.run_history import AttemptSpan

STATE_ORDER = (
    "failed",
    "upstream_failed",
    "up_for_retry",
    "running",
    "queued",
    "scheduled",
    "pending",
    "success",
    "skipped",
)
"""How several instances' states sum up into one colour: the first state present wins."""

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 190, 40, 56, 14, 10


def summary_state(counts: Mapping[str, int]) -> str:
    """The one state a set of instances is shown in (a failure outranks progress, progress outranks done)."""
    for state in STATE_ORDER:
        if counts.get(state):
            return state
    return next(iter(counts), "none")


def counts_label(counts: Mapping[str, int]) -> str:
    """'3 success, 1 failed', failures first."""
    rank = {state: i for i, state in enumerate(STATE_ORDER)}
    ordered = sorted(counts.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))
    return ", ".join(f"{n} {state}" for state, n in ordered if n)


def collapse(tasks: Iterable[TaskRecord]) -> dict[str, dict[str, int]]:
    """Per task id, the count of its instances in each state (a mapped task has one per map index)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for t in tasks:
        counts[t.task_id][t.state] += 1
    return {k: dict(v) for k, v in counts.items()}


@dataclass(frozen=True)
class Node:
    task_id: str
    x: int
    y: int
    mapped: bool
    kind: str


@dataclass(frozen=True)
class Graph:
    nodes: list[Node]
    edges: list[str] = field(default_factory=list)
    """SVG path data, one cubic curve per dependency."""
    width: int = 0
    height: int = 0


def layout(spec: DagSpec) -> Graph:
    """Left-to-right layers by longest path from a root; within a layer, ordered by upstream position."""
    layer: dict[str, int] = {}
    for t in spec.tasks:  # topological order
        layer[t.task_id] = 1 + max((layer[u] for u in t.upstream if u in layer), default=-1)
    columns: dict[int, list[str]] = defaultdict(list)
    row: dict[str, float] = {}
    for t in spec.tasks:
        col = columns[layer[t.task_id]]
        ups = [row[u] for u in t.upstream if u in row]
        row[t.task_id] = sum(ups) / len(ups) if ups else len(col)
        col.append(t.task_id)
    place: dict[str, tuple[int, int]] = {}
    for number, ids in columns.items():
        for index, task_id in enumerate(sorted(ids, key=lambda i: row[i])):
            place[task_id] = (PAD + number * (NODE_W + GAP_X), PAD + index * (NODE_H + GAP_Y))
    nodes = [Node(t.task_id, *place[t.task_id], t.is_mapped, t.kind) for t in spec.tasks]
    edges = []
    for t in spec.tasks:
        x2, y2 = place[t.task_id]
        for u in t.upstream:
            if u in place:
                x1, y1 = place[u][0] + NODE_W, place[u][1] + NODE_H // 2
                mid = (x1 + x2) // 2
                edges.append(f"M{x1},{y1} C{mid},{y1} {mid},{y2 + NODE_H // 2} {x2},{y2 + NODE_H // 2}")
    width = max((x for x, _ in place.values()), default=0) + NODE_W + PAD
    height = max((y for _, y in place.values()), default=0) + NODE_H + PAD
    return Graph(nodes, edges, width, height)


@dataclass(frozen=True)
class Bar:
    """One span of one attempt: `kind` is queued or running; x and width in chart units (0..1000)."""

    kind: str
    state: str
    x: float
    width: float
    title: str


@dataclass(frozen=True)
class GanttRow:
    label: str
    task_id: str
    map_index: int
    bars: list[Bar]
    instances: int = 1


@dataclass(frozen=True)
class Gantt:
    rows: list[GanttRow]
    start: datetime | None
    seconds: float
    ticks: list[tuple[float, str]] = field(default_factory=list)


GANTT_UNITS = 1000.0


def gantt(
    tasks: Sequence[TaskRecord], attempts: Sequence[AttemptSpan], now: datetime, expand: frozenset[str]
) -> Gantt:
    """Queued and running spans per attempt; a mapped task is one row spanning its instances unless
    its id is in `expand`."""
    spans = _spans(tasks, attempts)
    times = [t for s in spans for t in (s.queued_at, s.started_at, s.ended_at) if t is not None]
    if not times:
        return Gantt(rows=[], start=None, seconds=0.0)
    start, end = min(times), max([*times, *(now for s in spans if s.ended_at is None)])
    seconds = max((end - start).total_seconds(), 0.001)

    def pos(t: datetime) -> float:
        return (t - start).total_seconds() / seconds * GANTT_UNITS

    def bars(group: Sequence[AttemptSpan]) -> list[Bar]:
        found = []
        for s in group:
            begin = s.started_at or s.ended_at or now
            if s.queued_at is not None and begin > s.queued_at:
                title = f"try {s.try_number} queued {(begin - s.queued_at).total_seconds():.3f} s"
                found.append(Bar("queued", s.state, pos(s.queued_at), pos(begin) - pos(s.queued_at), title))
            if s.started_at is not None:
                finish = s.ended_at or now
                title = f"try {s.try_number} {s.state} {(finish - s.started_at).total_seconds():.3f} s"
                found.append(
                    Bar(
                        "running",
                        s.state,
                        pos(s.started_at),
                        max(pos(finish) - pos(s.started_at), 1.0),
                        title,
                    )
                )
        return found

    by_task: dict[str, list[AttemptSpan]] = defaultdict(list)
    for s in spans:
        by_task[s.task_id].append(s)
    rows: list[GanttRow] = []
    mapped = {t.task_id for t in tasks if t.map_index >= 0}
    for task_id in dict.fromkeys(t.task_id for t in tasks):
        group = by_task.get(task_id, [])
        if task_id in mapped and task_id not in expand:
            rows.append(
                GanttRow(task_id, task_id, -1, bars(_envelope(group)), len({s.map_index for s in group}))
            )
            continue
        by_index: dict[int, list[AttemptSpan]] = defaultdict(list)
        for s in group:
            by_index[s.map_index].append(s)
        for index in sorted(by_index):
            label = task_id if index < 0 else f"{task_id}[{index}]"
            rows.append(GanttRow(label, task_id, index, bars(by_index[index])))
    return Gantt(rows=rows, start=start, seconds=seconds, ticks=_ticks(seconds))


def _spans(tasks: Sequence[TaskRecord], attempts: Sequence[AttemptSpan]) -> list[AttemptSpan]:
    """Recorded attempts, plus each instance's current try when it has not been recorded yet."""
    recorded = {(a.task_id, a.map_index, a.try_number) for a in attempts}
    spans = list(attempts)
    for t in tasks:
        if (
            t.try_number > 0
            and t.queued_at is not None
            and (t.task_id, t.map_index, t.try_number) not in recorded
        ):
            spans.append(
                AttemptSpan(
                    t.task_id, t.map_index, t.try_number, t.state, t.queued_at, t.started_at, t.ended_at
                )
            )
    return spans


def _envelope(group: Sequence[AttemptSpan]) -> list[AttemptSpan]:
    """A mapped task's instances as one span per try number: first queued, first started, last ended."""
    tries: dict[int, list[AttemptSpan]] = defaultdict(list)
    for s in group:
        tries[s.try_number].append(s)
    merged = []
    for number, same in sorted(tries.items()):
        queued = [s.queued_at for s in same if s.queued_at]
        started = [s.started_at for s in same if s.started_at]
        ended = [s.ended_at for s in same if s.ended_at]
        done = len(ended) == len(same)
        state = summary_state(collapse_states(s.state for s in same))
        merged.append(
            AttemptSpan(
                same[0].task_id,
                -1,
                number,
                state,
                min(queued, default=None),
                min(started, default=None),
                max(ended) if done and ended else None,
            )
        )
    return merged


def collapse_states(states: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for s in states:
        counts[s] += 1
    return dict(counts)


def _ticks(seconds: float) -> list[tuple[float, str]]:
    """About five round time marks along the chart."""
    step = next(
        (s for s in (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600) if seconds / s <= 6), 7200
    )
    count = int(seconds // step)
    return [(i * step / seconds * GANTT_UNITS, _duration(i * step)) for i in range(count + 1)]


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms" if seconds else "0"
    if seconds < 120:
        return f"{seconds:g} s"
    return f"{seconds / 60:g} min"


CHART_W, CHART_H, CHART_LEFT, CHART_BOTTOM = 720, 200, 56, 22


@dataclass(frozen=True)
class Line:
    label: str
    path: str


@dataclass(frozen=True)
class Chart:
    """A line chart over time: one SVG path per series (gaps where a bucket has no value)."""

    lines: list[Line]
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    width: int = CHART_W
    height: int = CHART_H


def line_chart(
    starts: Sequence[datetime], series: Sequence[tuple[str, Sequence[float | None]]], unit: str
) -> Chart:
    """Lines of `series` (label, one value or None per bucket) over the buckets starting at `starts`."""
    values = [v for _, vs in series for v in vs if v is not None]
    top = 1.0 if unit == "%" else _nice_ceiling(max(values, default=0.0))
    plot_w, plot_h = CHART_W - CHART_LEFT - 40, CHART_H - CHART_BOTTOM - 8
    count = max(len(starts) - 1, 1)

    def point(i: int, v: float) -> str:
        return f"{CHART_LEFT + i / count * plot_w:.1f},{8 + plot_h - (v / top * plot_h if top else 0):.1f}"

    lines = []
    for label, vs in series:
        parts, pen_down = [], False
        for i, v in enumerate(vs):
            if v is None:
                pen_down = False
                continue
            parts.append(("L" if pen_down else "M") + point(i, v))
            pen_down = True
        lines.append(Line(label, " ".join(parts)))
    y_ticks = [(8 + plot_h - f * plot_h, _number(top * f, unit)) for f in (0, 0.25, 0.5, 0.75, 1)]
    step = max(1, len(starts) // 6)
    x_ticks = [
        (CHART_LEFT + i / count * plot_w, starts[i].strftime("%m-%d %H:%M"))
        for i in range(0, len(starts), step)
    ]
    return Chart(lines, y_ticks, x_ticks)


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (1 when there is nothing)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


def _number(value: float, unit: str) -> str:
    """An axis label: 25%, 0.5 ms, 1,500 (no exponent notation)."""
    if unit == "%":
        return f"{value * 100:.0f}%"
    text = f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
    return f"{text} {unit}" if unit else text


@dataclass(frozen=True)
class GridRow:
    """One row of the runs grid: a task, or one map index of an expanded mapped task."""

    task_id: str
    map_index: int | None
    cells: Markup


def grid_rows(
    runs: Sequence[tuple[str, str]],
    task_ids: Sequence[str],
    cells: Mapping[tuple[str, str], Mapping[str, int]],
    instances: Mapping[str, Mapping[tuple[str, int], str]] | None = None,
) -> list[GridRow]:
    """The runs grid's rows: one per task, then one per map index of each task in `instances`.

    Cells are ready HTML (oldest run first), built here rather than in the template: a grid is
    thousands of cells, and each costs a few string joins instead of template calls. `runs` is
    (run id, URL-quoted run id), oldest first.
    """
    looks: dict[tuple[tuple[str, int], ...], tuple[str, str]] = {}

    def look(counts: Mapping[str, int]) -> tuple[str, str]:
        key = tuple(sorted(counts.items()))
        found = looks.get(key)
        if found is None:
            found = looks[key] = (summary_state(counts), str(escape(counts_label(counts))))
        return found

    rows = []
    for task_id in task_ids:
        task_url, task_text = quote(task_id, safe=""), escape(task_id)
        parts = []
        for run_id, run_url in runs:
            counts = cells.get((run_id, task_id))
            if not counts:
                parts.append(_EMPTY)
                continue
            state, label = look(counts)
            parts.append(_cell(run_url, state, f"task={task_url}", f"{task_text}: {label}"))
        rows.append(GridRow(task_id, None, Markup("".join(parts))))
        states = (instances or {}).get(task_id, {})
        for index in range(1 + max((i for _, i in states), default=-1)):
            rows.append(GridRow(task_id, index, _instance_cells(runs, task_id, index, states)))
    return rows


def _instance_cells(
    runs: Sequence[tuple[str, str]], task_id: str, index: int, states: Mapping[tuple[str, int], str]
) -> Markup:
    """The grid cells of one map index of a mapped task, one per run (empty where it has none)."""
    task_url, task_text = quote(task_id, safe=""), escape(task_id)
    query = f"task={task_url}&amp;map_index={index}&amp;expand={task_url}#task-section"
    parts = []
    for run_id, run_url in runs:
        state = states.get((run_id, index))
        parts.append(
            _EMPTY if state is None else _cell(run_url, state, query, f"{task_text}[{index}]: {state}")
        )
    return Markup("".join(parts))


_EMPTY = "<td></td>"


def _cell(run_url: str, state: str, query: str, title: str) -> str:
    """One grid cell: coloured by `state`, a link to the run page (`query` and `title` are escaped)."""
    return f'<td class="s-{state}"><a tabindex="-1" href="/runs/{run_url}?{query}" title="{title}"></a></td>'
