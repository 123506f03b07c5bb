"""Every state change RunGraph makes is one that `TASK_TRANSITIONS` allows, under random sequences of
what the scheduler and users do to a run (dispatch, start, outcomes, retries, mark, clear, cancel).
A clear may show as one move through PENDING (reset, then ready again in the same call)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from zonda.core.outputs import ArtifactRef
from zonda.core.run_graph import RunGraph, TIKey
from zonda.core.spec import DagSpec, MapSource, TaskSpec
from zonda.core.states import TASK_TRANSITIONS, TaskState, TriggerRule

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = DagSpec(
    "d",
    tasks=(
        TaskSpec("a", retries=1),
        TaskSpec("grid", upstream=("a",)),
        TaskSpec(
            "m", upstream=("grid",), data_upstream=("grid",), map_sources=(MapSource("x", "task", "grid"),)
        ),
        TaskSpec("after", upstream=("m",)),
        TaskSpec("cleanup", upstream=("after",), trigger_rule=TriggerRule.ALL_DONE),
    ),
)
OPS = st.lists(
    st.tuples(
        st.sampled_from(["queue", "start", "succeed", "fail", "retry_due", "mark", "clear", "cancel"]),
        st.integers(0, 30),
        st.booleans(),
    ),
    max_size=40,
)


def _apply(graph: RunGraph, op: str, pick: int, flag: bool, now: datetime) -> None:
    keys = sorted(ti.key for ti in graph.instances())
    key: TIKey = keys[pick % len(keys)]
    ti = graph.instance(key)
    if op == "queue" and ti.state is TaskState.SCHEDULED:
        graph.mark_queued(key, now)
    elif op == "start":
        graph.mark_running(key, ti.try_number, now)
    elif op in ("succeed", "fail"):
        output = ArtifactRef("json", 1, b"[1, 2]") if op == "succeed" else None
        graph.finish(key, ti.try_number, ok=op == "succeed", now=now, output=output, length=2)
    elif op == "retry_due":
        graph.retry_due(key)
    elif op == "mark":
        state = TaskState.SUCCESS if flag else TaskState.FAILED
        graph.mark(key[0], key[1] if key[1] >= 0 else None, state, "marked by hand", now)
    elif op == "clear":
        graph.clear([key[0]], downstream=flag, now=now)
    elif op == "cancel":
        graph.cancel("cancelled", now)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_every_state_change_is_an_allowed_transition(ops: list[tuple[str, int, bool]]) -> None:
    graph = RunGraph.new("r1", SPEC, {})
    graph.start(T0)
    for step, (op, pick, flag) in enumerate(ops):
        before = {ti.key: ti.state for ti in graph.instances()}
        _apply(graph, op, pick, flag, T0 + timedelta(seconds=step))
        for ti in graph.instances():
            old = before.get(ti.key)
            if old is not None and ti.state is not old:
                assert _allowed(old, ti.state, op), f"{op} moved {ti.key} from {old} to {ti.state}"


def _allowed(old: TaskState, new: TaskState, op: str) -> bool:
    """A direct move, or for a clear: back to PENDING, then on at once if its upstream allows."""
    if new in TASK_TRANSITIONS[old]:
        return True
    return (
        op == "clear"
        and TaskState.PENDING in TASK_TRANSITIONS[old]
        and new in TASK_TRANSITIONS[TaskState.PENDING]
    )
