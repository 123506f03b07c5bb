"""The web UI's drawing decisions: graph layout, chart axes and gaps, grid cells (escaped), state counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from zonda.api.schemas import TaskRecord
from zonda.core.spec import DagSpec, TaskSpec
from zonda.db.run_history import AttemptSpan
from zonda.web import views

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_layout_puts_each_task_one_layer_right_of_its_deepest_upstream() -> None:
    spec = DagSpec(
        "d",
        tasks=(
            TaskSpec("a"),
            TaskSpec("b", upstream=("a",)),
            TaskSpec("c"),
            TaskSpec("d", upstream=("b", "c")),
        ),
    )
    graph = views.layout(spec)
    x = {n.task_id: n.x for n in graph.nodes}
    assert x["a"] == x["c"] < x["b"] < x["d"]
    assert len(graph.edges) == 3
    assert graph.width > x["d"] and graph.height > 0


def test_line_chart_leaves_gaps_for_empty_buckets_and_labels_axes_plainly() -> None:
    starts = [T0 + timedelta(minutes=i) for i in range(4)]
    chart = views.line_chart(starts, [("p50", [1.0, None, 3.0, 1500.0])], "ms")
    path = chart.lines[0].path
    assert path.count("M") == 2, "a bucket without a value breaks the line"
    assert [label for _, label in chart.y_ticks] == ["0 ms", "500 ms", "1,000 ms", "1,500 ms", "2,000 ms"]
    rates = views.line_chart(starts, [("failure rate", [0.0, 0.0, None, 0.0])], "%")
    assert [label for _, label in rates.y_ticks] == ["0%", "25%", "50%", "75%", "100%"]


def test_grid_cells_escape_task_ids_and_name_the_state() -> None:
    rows = views.grid_rows([("r1", "r1")], ["<script>"], {("r1", "<script>"): {"success": 3, "failed": 1}})
    ((task_id, map_index, html),) = [(r.task_id, r.map_index, r.cells) for r in rows]
    assert (task_id, map_index) == ("<script>", None)
    assert "<script>" not in str(html) and "&lt;script&gt;" in str(html)
    assert 'class="s-failed"' in str(html) and "1 failed, 3 success" in str(html)


def test_an_expanded_mapped_task_has_a_row_per_map_index_with_a_cell_per_run() -> None:
    runs = [("r1", "r1"), ("r2", "r2")]
    cells = {("r1", "m"): {"success": 2}, ("r2", "m"): {"success": 1, "failed": 2}}
    instances = {"m": {("r1", 0): "success", ("r1", 1): "success", ("r2", 0): "success", ("r2", 2): "failed"}}
    rows = views.grid_rows(runs, ["m"], cells, instances)
    assert [(r.task_id, r.map_index) for r in rows] == [("m", None), ("m", 0), ("m", 1), ("m", 2)]
    second = str(rows[2].cells)
    assert second.count("<td") == 2 and second.endswith("<td></td>"), "r2 has no map index 1"
    assert "?task=m&amp;map_index=1&amp;expand=m#task-section" in second
    assert 'class="s-failed"' in str(rows[3].cells)


def test_counts_label_lists_failures_first() -> None:
    assert views.counts_label({"success": 2, "failed": 1, "running": 0}) == "1 failed, 2 success"


def test_gantt_draws_queued_and_running_spans_and_folds_a_mapped_task() -> None:
    def at(ms: int) -> datetime:
        return T0 + timedelta(milliseconds=ms)

    tasks = [
        TaskRecord(task_id="fetch", state="success", try_number=2),
        TaskRecord(task_id="score", map_index=0, state="success", try_number=1),
        TaskRecord(
            task_id="score", map_index=1, state="running", try_number=1, queued_at=at(650), started_at=at(700)
        ),
    ]
    attempts = [
        AttemptSpan("fetch", -1, 1, "up_for_retry", at(0), at(100), at(200)),
        AttemptSpan("fetch", -1, 2, "success", at(300), at(300), at(500)),
        AttemptSpan("score", 0, 1, "success", at(500), at(600), at(800)),
    ]
    chart = views.gantt(tasks, attempts, now=at(1000), expand=frozenset())
    assert [(r.label, r.instances) for r in chart.rows] == [("fetch", 1), ("score", 2)]
    fetch = chart.rows[0].bars
    assert [(b.kind, b.state) for b in fetch] == [
        ("queued", "up_for_retry"),
        ("running", "up_for_retry"),
        ("running", "success"),
    ]
    assert fetch[0].x == 0.0 and round(fetch[0].width) == 100, "1 s spans 1000 units: 100 ms queued"
    expanded = views.gantt(tasks, attempts, now=at(1000), expand=frozenset({"score"}))
    assert [r.label for r in expanded.rows] == ["fetch", "score[0]", "score[1]"]
    running = expanded.rows[2].bars[-1]
    assert running.kind == "running" and round(running.x + running.width) == 1000, "a running try reaches now"
