"""Ready-queue order and concurrency limits: pure in-memory decisions of the scheduler."""

from __future__ import annotations

from zonda.core.quotas import Quota
from zonda.core.spec import TaskSpec
from zonda.scheduler.limits import TENANT_QUOTA, UNKNOWN_POOL, Limits
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


def test_the_order_holds_across_tenants() -> None:
    q = ReadyQueue()
    q.push("a-old", ("t", -1), 0, run_seq=1, topo_index=0, tenant="a")
    q.push("b-new", ("t", -1), 0, run_seq=4, topo_index=0, tenant="b")
    q.push("b-old", ("t", -1), 0, run_seq=2, topo_index=0, tenant="b")
    q.push("a-new", ("t", -1), 0, run_seq=3, topo_index=0, tenant="a")
    q.push("a-new", ("urgent", -1), 5, run_seq=3, topo_index=1, tenant="a")
    assert [q.pop() for _ in range(5)] == [
        ("a-new", ("urgent", -1)),
        ("a-old", ("t", -1)),
        ("b-old", ("t", -1)),
        ("a-new", ("t", -1)),
        ("b-new", ("t", -1)),
    ]


def test_a_parked_tenant_is_skipped_until_unparked() -> None:
    q = ReadyQueue()
    for seq in range(3):
        q.push(f"a{seq}", ("t", -1), 0, run_seq=seq, topo_index=0, tenant="a")
    q.push("b", ("t", -1), 0, run_seq=9, topo_index=0, tenant="b")
    q.park("a")
    q.push("a-late", ("t", -1), 9, run_seq=10, topo_index=0, tenant="a")
    assert q.pop() == ("b", ("t", -1))
    assert q.pop() is None
    assert len(q) == 4
    q.unpark("a")
    assert q.pop() == ("a-late", ("t", -1))
    q.park("a")
    q.unpark_all()
    assert [q.pop() for _ in range(4)] == [("a0", ("t", -1)), ("a1", ("t", -1)), ("a2", ("t", -1)), None]


def test_duplicates_are_ignored_and_runs_can_be_dropped() -> None:
    q = ReadyQueue()
    q.push("r", ("a", -1), 0, 1, 0)
    q.push("r", ("a", -1), 0, 1, 0)
    assert len(q) == 1
    q.discard_run("r")
    assert q.pop() is None
    q.push("r", ("a", -1), 0, 1, 0, tenant="t")
    q.push("s", ("a", -1), 0, 2, 0, tenant="t")
    q.discard_run("r")
    assert q.pop() == ("s", ("a", -1))
    assert q.pop() is None


def test_max_active_tasks_and_pools_of_a_tenant() -> None:
    limits = Limits()
    limits.set_pools({("a", "gpu"): 2})
    gpu = TaskSpec("train", pool="gpu", pool_slots=2)
    assert limits.blocker("a", "a/d", 10, gpu) is None
    limits.take("a", "a/d", gpu)
    assert limits.blocker("a", "a/d", 10, gpu) == "pool full"
    assert limits.blocker("a", "a/d", 1, TaskSpec("x")) == "max_active_tasks"
    assert limits.blocker("a", "a/other", 5, TaskSpec("x", pool="nope")) == UNKNOWN_POOL
    assert limits.blocker("b", "b/d", 10, gpu) == UNKNOWN_POOL, "tenant b has no pool 'gpu'"
    limits.release("a", "a/d", gpu)
    assert limits.blocker("a", "a/d", 10, gpu) is None
    assert limits.bounded("a") and not limits.bounded("b")


def test_same_pool_name_in_two_tenants_is_two_pools() -> None:
    limits = Limits()
    limits.set_pools({("a", "gpu"): 1, ("b", "gpu"): 1})
    gpu = TaskSpec("train", pool="gpu")
    limits.take("a", "a/d", gpu)
    assert limits.blocker("a", "a/d", 10, gpu) == "pool full"
    assert limits.blocker("b", "b/d", 10, gpu) is None


def test_tenant_quota_on_running_tasks_and_active_runs() -> None:
    limits = Limits(quotas={"a": Quota(max_running_tasks=2, max_active_runs=1)})
    task = TaskSpec("t")
    limits.take("a", "a/d", task)
    limits.take("a", "a/e", task)
    assert limits.blocker("a", "a/f", 10, task) == TENANT_QUOTA
    assert limits.blocker("b", "b/d", 10, task) is None
    limits.release("a", "a/d", task)
    assert limits.blocker("a", "a/f", 10, task) is None
    assert limits.full_for_runs() == frozenset()
    limits.runs_by_tenant["a"] += 1
    limits.runs_by_tenant["b"] += 5
    assert limits.full_for_runs() == {"a"}
