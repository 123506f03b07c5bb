"""Ready-queue order and concurrency limits: pure in-memory decisions of the scheduler."""

from __future__ import annotations

from zonda.core.spec import TaskSpec
from zonda.scheduler.limits import Limits
from zonda.scheduler.ready_queue import ReadyQueue


def test_priority_first_then_older_runs_then_dag_order() -> None:
    q = ReadyQueue()
    q.push("new-run", ("a", -1), priority=0, run_seq=2, topo_index=0)
    q.push("old-run", ("z", -1), priority=0, run_seq=1, topo_index=9)
    q.push("old-run", ("b", -1), priority=0, run_seq=1, topo_index=1)
    q.push("new-run", ("urgent", -1), priority=10, run_seq=2, topo_index=5)
    order = [q.pop() for _ in range(4)]
    assert order == [
        ("new-run", ("urgent", -1)),
        ("old-run", ("b", -1)),
        ("old-run", ("z", -1)),
        ("new-run", ("a", -1)),
    ]
    assert q.pop() is None


def test_duplicates_are_ignored_and_runs_can_be_dropped() -> None:
    q = ReadyQueue()
    q.push("r", ("a", -1), 0, 1, 0)
    q.push("r", ("a", -1), 0, 1, 0)
    assert len(q) == 1
    q.discard_run("r")
    assert q.pop() is None


def test_max_active_tasks_and_pools() -> None:
    limits = Limits(pool_sizes={"gpu": 2})
    gpu = TaskSpec("train", pool="gpu", pool_slots=2)
    assert limits.blocker("d", 10, gpu) is None
    limits.take("d", gpu)
    assert limits.blocker("d", 10, gpu) == "pool full"
    assert limits.blocker("d", 1, TaskSpec("x")) == "max_active_tasks"
    assert limits.blocker("other", 5, TaskSpec("x", pool="nope")) == "unknown pool"
    limits.release("d", gpu)
    assert limits.blocker("d", 10, gpu) is None
