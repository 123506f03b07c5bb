"""RunGraph: readiness, trigger rules, retries, mapping and clearing, driven without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from zonda.core.outputs import ArtifactRef
from zonda.core.run_graph import UNMAPPED, RunGraph
from zonda.core.spec import DagSpec, MapSource, TaskSpec
from zonda.core.states import RunState, TaskState, TriggerRule

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TRAIN = TaskSpec(
    "train", upstream=("grid",), data_upstream=("grid",), map_sources=(MapSource("p", "task", "grid"),)
)


def spec(*tasks: TaskSpec) -> DagSpec:
    return DagSpec("d", tasks=tasks)


def run(*tasks: TaskSpec, params: dict[str, object] | None = None) -> RunGraph:
    graph = RunGraph.new("r1", spec(*tasks), params or {})
    graph.start(T0)
    return graph


def take_scheduled(graph: RunGraph) -> list[tuple[str, int]]:
    keys, graph.changes.scheduled = graph.changes.scheduled, []
    return keys


def succeed(graph: RunGraph, key: tuple[str, int], length: int | None = None) -> None:
    n = graph.mark_queued(key, T0)
    graph.finish(key, n, ok=True, now=T0, output=ArtifactRef("json", 1, b"1"), length=length)


def fail(graph: RunGraph, key: tuple[str, int], now: datetime = T0) -> None:
    n = graph.mark_queued(key, now)
    graph.finish(key, n, ok=False, now=now, error="boom")


def state(graph: RunGraph, task_id: str, map_index: int = UNMAPPED) -> TaskState:
    return graph.instance((task_id, map_index)).state


def test_roots_are_ready_and_downstream_waits_for_all_upstream() -> None:
    g = run(TaskSpec("a"), TaskSpec("b"), TaskSpec("c", upstream=("a", "b")))
    assert sorted(take_scheduled(g)) == [("a", -1), ("b", -1)]
    succeed(g, ("a", -1))
    assert take_scheduled(g) == []
    succeed(g, ("b", -1))
    assert take_scheduled(g) == [("c", -1)]
    succeed(g, ("c", -1))
    assert g.state is RunState.SUCCESS


def test_failure_propagates_upstream_failed_and_fails_the_run() -> None:
    g = run(TaskSpec("a"), TaskSpec("b", upstream=("a",)), TaskSpec("c", upstream=("b",)))
    fail(g, ("a", -1))
    assert state(g, "b") is TaskState.UPSTREAM_FAILED
    assert state(g, "c") is TaskState.UPSTREAM_FAILED
    assert g.state is RunState.FAILED


def test_one_failed_cleanup_runs_only_on_failure() -> None:
    g = run(TaskSpec("a"), TaskSpec("alert", upstream=("a",), trigger_rule=TriggerRule.ONE_FAILED))
    take_scheduled(g)
    fail(g, ("a", -1))
    assert take_scheduled(g) == [("alert", -1)]
    g2 = run(TaskSpec("a"), TaskSpec("alert", upstream=("a",), trigger_rule=TriggerRule.ONE_FAILED))
    succeed(g2, ("a", -1))
    assert state(g2, "alert") is TaskState.SKIPPED
    assert g2.state is RunState.SUCCESS


def test_all_done_runs_after_a_failure() -> None:
    g = run(TaskSpec("a"), TaskSpec("report", upstream=("a",), trigger_rule=TriggerRule.ALL_DONE))
    take_scheduled(g)
    fail(g, ("a", -1))
    assert take_scheduled(g) == [("report", -1)]


def test_retry_waits_for_the_delay_then_succeeds() -> None:
    g = run(TaskSpec("a", retries=1, retry_delay=10.0))
    fail(g, ("a", -1))
    ti = g.instance(("a", -1))
    assert ti.state is TaskState.UP_FOR_RETRY
    assert ti.next_try_at == T0 + timedelta(seconds=10)
    assert g.changes.retries == [("a", -1)]
    g.retry_due(("a", -1))
    succeed(g, ("a", -1))
    assert ti.try_number == 2
    assert [a.state for a in g.changes.attempts] == [TaskState.UP_FOR_RETRY, TaskState.SUCCESS]
    assert g.state is RunState.SUCCESS


def test_retries_exhausted_fail_the_task() -> None:
    g = run(TaskSpec("a", retries=1))
    fail(g, ("a", -1))
    g.retry_due(("a", -1))
    fail(g, ("a", -1))
    assert state(g, "a") is TaskState.FAILED


def test_stale_report_of_an_old_try_is_ignored() -> None:
    g = run(TaskSpec("a", retries=1))
    fail(g, ("a", -1))
    g.retry_due(("a", -1))
    g.mark_queued(("a", -1), T0)
    g.finish(("a", -1), 1, ok=True, now=T0)
    assert state(g, "a") is TaskState.QUEUED


def test_a_retry_reported_before_it_was_stored_is_adopted_and_an_older_try_is_not() -> None:
    g = run(TaskSpec("a", retries=2, retry_delay=10.0))
    fail(g, ("a", -1))
    assert not g.restore_attempt(("a", -1), 1, None), "the failed try is no newer than the stored one"
    assert state(g, "a") is TaskState.UP_FOR_RETRY
    assert g.restore_attempt(("a", -1), 2, None)
    ti = g.instance(("a", -1))
    assert (ti.state, ti.try_number, ti.next_try_at) == (TaskState.QUEUED, 2, None)
    g.finish(("a", -1), 2, ok=True, now=T0)
    assert g.state is RunState.SUCCESS


def test_mapping_over_an_upstream_result_expands_at_run_time() -> None:
    g = run(
        TaskSpec("grid"),
        TaskSpec(
            "train",
            upstream=("grid",),
            data_upstream=("grid",),
            map_sources=(MapSource("p", "task", "grid"),),
        ),
        TaskSpec("best", upstream=("train",), data_upstream=("train",)),
    )
    take_scheduled(g)
    succeed(g, ("grid", -1), length=3)
    assert sorted(take_scheduled(g)) == [("train", 0), ("train", 1), ("train", 2)]
    assert ("train", -1) in g.changes.deleted or ("train", -1) not in g.changes.inserted
    for i in range(3):
        succeed(g, ("train", i))
    assert take_scheduled(g) == [("best", -1)]
    outputs = g.upstream_outputs("best")["train"]
    assert isinstance(outputs, list) and len(outputs) == 3


def test_mapping_over_an_empty_list_skips() -> None:
    g = run(
        TaskSpec("grid"),
        TaskSpec(
            "train",
            upstream=("grid",),
            data_upstream=("grid",),
            map_sources=(MapSource("p", "task", "grid"),),
        ),
    )
    succeed(g, ("grid", -1), length=0)
    assert state(g, "train") is TaskState.SKIPPED


def test_mapping_over_a_non_list_fails_with_a_message() -> None:
    g = run(
        TaskSpec("grid"),
        TaskSpec(
            "train",
            upstream=("grid",),
            data_upstream=("grid",),
            map_sources=(MapSource("p", "task", "grid"),),
        ),
    )
    succeed(g, ("grid", -1), length=None)
    ti = g.instance(("train", -1))
    assert ti.state is TaskState.FAILED
    assert ti.error is not None and "did not return a list" in ti.error


def test_literal_and_param_mapping() -> None:
    g = run(
        TaskSpec("lit", map_sources=(MapSource("x", "literal", length=2),)),
        TaskSpec("par", map_sources=(MapSource("x", "param", "xs"),)),
        params={"xs": [1, 2, 3]},
    )
    assert len(take_scheduled(g)) == 5


def test_one_failed_mapped_instance_fails_downstream() -> None:
    g = run(
        TaskSpec("m", map_sources=(MapSource("x", "literal", length=2),)),
        TaskSpec("after", upstream=("m",)),
    )
    succeed(g, ("m", 0))
    fail(g, ("m", 1))
    assert state(g, "after") is TaskState.UPSTREAM_FAILED


def test_clear_reruns_failed_parts_only() -> None:
    g = run(TaskSpec("a"), TaskSpec("b", upstream=("a",)), TaskSpec("c"))
    succeed(g, ("a", -1))
    fail(g, ("b", -1))
    succeed(g, ("c", -1))
    assert g.state is RunState.FAILED
    take_scheduled(g)
    cleared = g.clear(None, downstream=False, now=T0)
    assert cleared == [("b", -1)]
    assert g.state is RunState.RUNNING
    assert take_scheduled(g) == [("b", -1)]
    assert state(g, "a") is TaskState.SUCCESS
    succeed(g, ("b", -1))
    assert g.state is RunState.SUCCESS
    assert g.instance(("b", -1)).try_number == 2


def test_clear_with_downstream() -> None:
    g = run(TaskSpec("a"), TaskSpec("b", upstream=("a",)))
    succeed(g, ("a", -1))
    succeed(g, ("b", -1))
    g.clear(["a"], downstream=True, now=T0)
    assert state(g, "a") is TaskState.SCHEDULED
    assert state(g, "b") is TaskState.PENDING


def test_rebuild_from_stored_states_resumes() -> None:
    g = run(TaskSpec("a"), TaskSpec("b", upstream=("a",)), TaskSpec("c", upstream=("b",)))
    succeed(g, ("a", -1))
    stored = [g.instance((t, -1)) for t in "abc"]
    again = RunGraph("r1", g.spec, {}, stored)
    again.start(T0)
    assert again.changes.scheduled == [("b", -1)]


def test_requeue_keeps_the_try_number() -> None:
    g = run(TaskSpec("a"))
    g.mark_queued(("a", -1), T0)
    g.requeue(("a", -1))
    assert g.mark_queued(("a", -1), T0) == 1


def test_cancel_fails_what_started_skips_the_rest_and_starts_nothing() -> None:
    g = run(
        TaskSpec("done"),
        TaskSpec("busy"),
        TaskSpec("retrying", retries=3, retry_delay=60.0),
        TaskSpec("next", upstream=("busy",)),
        TaskSpec("cleanup", upstream=("busy",), trigger_rule=TriggerRule.ALL_DONE),
    )
    succeed(g, ("done", -1))
    busy = g.mark_queued(("busy", -1), T0)
    fail(g, ("retrying", -1))
    take_scheduled(g)
    in_flight = g.cancel("cancelled by ana", T0 + timedelta(seconds=1))
    assert in_flight == [("busy", -1)]
    assert {t: state(g, t) for t in ("done", "busy", "retrying", "next", "cleanup")} == {
        "done": TaskState.SUCCESS,
        "busy": TaskState.FAILED,
        "retrying": TaskState.FAILED,
        "next": TaskState.SKIPPED,
        "cleanup": TaskState.SKIPPED,
    }
    assert g.instance(("busy", -1)).error == "cancelled by ana"
    assert g.state is RunState.FAILED and g.ended_at == T0 + timedelta(seconds=1)
    assert take_scheduled(g) == []
    g.finish(("busy", -1), busy, ok=True, now=T0)
    g.retry_due(("retrying", -1))
    assert state(g, "busy") is TaskState.FAILED and state(g, "retrying") is TaskState.FAILED
    assert g.cancel("again", T0) == []


def test_marking_a_failed_task_successful_lets_undecided_downstream_run() -> None:
    g = run(
        TaskSpec("a", retries=2, retry_delay=60.0),
        TaskSpec("b", upstream=("a",)),
        TaskSpec("c"),
    )
    fail(g, ("a", -1))
    assert state(g, "a") is TaskState.UP_FOR_RETRY
    take_scheduled(g)
    assert g.mark("a", None, TaskState.SUCCESS, "marked success by ana", T0) == []
    assert state(g, "a") is TaskState.SUCCESS and g.instance(("a", -1)).error is None
    assert sorted(take_scheduled(g)) == [("b", -1), ("c", -1)]
    g.retry_due(("a", -1))
    assert state(g, "a") is TaskState.SUCCESS, "a pending retry of a marked task does not run"


def test_marking_a_running_task_failed_returns_it_to_kill_and_ignores_its_late_report() -> None:
    g = run(
        TaskSpec("a"),
        TaskSpec("b", upstream=("a",)),
        TaskSpec("cleanup", upstream=("a",), trigger_rule=TriggerRule.ALL_DONE),
    )
    try_number = g.mark_queued(("a", -1), T0)
    g.changes.attempts.clear()
    assert g.mark("a", None, TaskState.FAILED, "marked failed by ana", T0) == [("a", -1)]
    assert [(a.task_id, a.state, a.error) for a in g.changes.attempts] == [
        ("a", TaskState.FAILED, "marked failed by ana")
    ]
    assert state(g, "b") is TaskState.UPSTREAM_FAILED and state(g, "cleanup") is TaskState.SCHEDULED
    g.finish(("a", -1), try_number, ok=True, now=T0)
    assert state(g, "a") is TaskState.FAILED


def test_marking_the_failed_leaf_of_a_failed_run_successful_ends_the_run_successful() -> None:
    g = run(TaskSpec("a"), TaskSpec("b", upstream=("a",)))
    succeed(g, ("a", -1))
    fail(g, ("b", -1))
    assert g.state is RunState.FAILED
    g.mark("b", None, TaskState.SUCCESS, "marked success by ana", T0 + timedelta(seconds=5))
    assert g.state is RunState.SUCCESS and g.ended_at == T0 + timedelta(seconds=5)


def test_marking_keeps_ended_downstream_until_it_is_cleared() -> None:
    g = run(TaskSpec("a"), TaskSpec("b", upstream=("a",)))
    fail(g, ("a", -1))
    g.mark("a", None, TaskState.SUCCESS, "marked success by ana", T0)
    assert state(g, "b") is TaskState.UPSTREAM_FAILED and g.state is RunState.FAILED
    g.clear(["b"], downstream=False, now=T0)
    assert state(g, "b") is TaskState.SCHEDULED


def test_marking_one_map_index() -> None:
    g = run(TaskSpec("grid"), TRAIN)
    succeed(g, ("grid", -1), length=3)
    fail(g, ("train", 1))
    g.mark("train", 1, TaskState.SUCCESS, "marked success by ana", T0)
    assert [state(g, "train", i) for i in range(3)] == [
        TaskState.SCHEDULED,
        TaskState.SUCCESS,
        TaskState.SCHEDULED,
    ]
