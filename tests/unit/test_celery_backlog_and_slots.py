"""The Celery executor's backlog and live slots per queue, and the worker supervisor's slot bookkeeping, restart back-off and heartbeat."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet

from tests.unit.test_celery_parts import request
from zonda.executors.celery.app import make_app
from zonda.executors.celery.backlog import (
    MAX_BUNDLE,
    PACE_RUNS,
    PACED_TASKS,
    RECENT_HORIZON,
    Backlog,
    QueueCapacity,
    TaskPaces,
)
from zonda.executors.celery.cpus import cgroup_cpu_quota, usable_cpus
from zonda.executors.celery.events import RunningTask, WorkerHeartbeat
from zonda.executors.celery.heartbeat import HeartbeatSender
from zonda.executors.celery.sealing import SHARED, WorkerKeys, worker_keys
from zonda.executors.celery.slots import SlotReporter, SlotState, SlotTask
from zonda.executors.celery.supervisor import WorkerSupervisor, slot_node
from zonda.executors.celery.tracker import LostWorkerTracker
from zonda.settings import Settings
from zonda.worker.protocol import TaskRequest

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def beat(
    worker: str, queues: tuple[str, ...], slots: int, host: str = "host", cpus: int | None = None
) -> WorkerHeartbeat:
    return WorkerHeartbeat(worker, host, queues, slots, (), NOW, NOW, cpus=cpus)


def held(
    backlog: Backlog, *requests: TaskRequest, queue: str = "default"
) -> dict[tuple[str, str, int], TaskRequest]:
    for r in requests:
        backlog.hold(r, queue)
    return {r.ti_key: r for r in requests}


def names(taken: list[tuple[TaskRequest, str]]) -> list[str]:
    return [f"{r.run_id}/{r.task_id}" for r, _ in taken]


def ended(backlog: Backlog, taken: list[tuple[TaskRequest, str]], at: float, *ran_for: float) -> None:
    """The first len(ran_for) of `taken` end at `at`, having run that long each."""
    for (r, _queue), seconds in zip(taken, ran_for, strict=False):
        backlog.finished(r.ti_key, at, seconds)


def test_a_queue_without_live_workers_gets_everything_at_once() -> None:
    backlog = Backlog(queued_per_slot=1.0, queued_seconds=0.1)
    current = held(backlog, *(request(task_id=f"t{i}") for i in range(5)))
    assert len(backlog.take({}, current, 0.0)) == 5
    assert backlog.take({"default": 1}, current, 0.0) == [], "nothing is left held"


def test_a_queue_gets_one_per_slot_until_a_task_of_it_ended() -> None:
    backlog = Backlog(queued_per_slot=4.0, queued_seconds=0.1)
    current = held(backlog, *(request(task_id=f"t{i}") for i in range(20)))
    first = backlog.take({"default": 4}, current, 0.0)
    assert len(first) == 4, "no task ended yet: its pace is not known"
    assert backlog.take({"default": 4}, current, 0.0) == []
    ended(backlog, first, 0.5, 0.5)
    assert len(backlog.take({"default": 4}, current, 0.5)) == 1 + 0, "half-second tasks: none waiting"


def test_short_tasks_keep_what_their_slots_get_through_in_queued_seconds_waiting() -> None:
    backlog = Backlog(queued_per_slot=4.0, queued_seconds=0.1)
    current = held(backlog, *(request(task_id=f"t{i}") for i in range(40)))
    first = backlog.take({"default": 2}, current, 0.0)
    ended(backlog, first, 0.1, 0.05, 0.05)
    assert backlog.waiting_share("default", 2, 0.1) == 4, "2 slots x 0.1 s / 0.05 s"
    assert len(backlog.take({"default": 2}, current, 0.1)) == 2 + 4


def test_the_waiting_share_is_at_most_queued_per_slot() -> None:
    backlog = Backlog(queued_per_slot=0.5, queued_seconds=0.1)
    current = held(backlog, *(request(task_id=f"t{i}") for i in range(40)))
    first = backlog.take({"default": 4}, current, 0.0)
    ended(backlog, first, 0.1, 0.001, 0.001, 0.001, 0.0)
    assert len(backlog.take({"default": 4}, current, 0.1)) == 4 + 2, "4 slots free, half a slot each waiting"


def test_long_tasks_keep_nothing_waiting_so_a_later_urgent_request_is_next() -> None:
    backlog = Backlog(queued_per_slot=4.0, queued_seconds=0.1)
    current = held(backlog, *(request(run_id=f"000{i}", task_id="train") for i in range(9)))
    first = backlog.take({"default": 2}, current, 0.0)
    ended(backlog, first, 3600.0, 3600.0, 3600.0)
    assert backlog.waiting_share("default", 2, 3600.0) == 0, "two hour-long tasks ending together"
    second = backlog.take({"default": 2}, current, 3600.0)
    assert names(second) == ["0002/train", "0003/train"]
    urgent = request(run_id="0009", task_id="train", priority=5)
    current |= held(backlog, urgent)
    backlog.finished(second[0][0].ti_key, 7200.0, 3600.0)
    assert names(backlog.take({"default": 2}, current, 7200.0)) == ["0009/train"]


def test_run_times_older_than_the_horizon_do_not_count_and_lost_attempts_never_do() -> None:
    backlog = Backlog(queued_per_slot=4.0, queued_seconds=0.1)
    current = held(backlog, *(request(task_id=f"t{i}") for i in range(20)))
    first = backlog.take({"default": 3}, current, 0.0)
    ended(backlog, first, 0.1, 0.01)
    assert backlog.waiting_share("default", 3, 0.1) == 12
    assert backlog.waiting_share("default", 3, 0.1 + RECENT_HORIZON + 0.1) == 0
    backlog.finished(first[1][0].ti_key, 5.0, None)
    backlog.withdrawn(first[2][0].ti_key)
    assert backlog.waiting_share("default", 3, 5.0) == 0, "a lost or withdrawn attempt sets no pace"
    assert len(backlog.take({"default": 3}, current, 5.0)) == 3, "each of the three freed a place"


def test_refills_wait_until_half_the_waiting_share_has_room() -> None:
    backlog = Backlog(queued_per_slot=4.0, queued_seconds=0.1)
    current = held(backlog, *(request(task_id=f"t{i}") for i in range(60)))
    first = backlog.take({"default": 2}, current, 0.0)
    ended(backlog, first, 0.001, 0.001, 0.001)
    second = backlog.take({"default": 2}, current, 0.001)
    assert len(second) == 10, "2 slots running and 8 (the most, 4 per slot) waiting on the broker"
    for i, done in enumerate(second[:3]):
        backlog.finished(done[0].ti_key, 0.002 + i * 0.001, 0.001)
        assert backlog.take({"default": 2}, current, 0.002 + i * 0.001) == [], "refill before half the share"
    backlog.finished(second[3][0].ti_key, 0.005, 0.001)
    assert len(backlog.take({"default": 2}, current, 0.005)) == 4, "half the waiting share, in one publish"


def test_held_lists_what_waits_here_with_its_queue() -> None:
    backlog = Backlog(queued_per_slot=0.0, queued_seconds=0.1)
    current = held(backlog, *(request(task_id=f"d{i}") for i in range(3)))
    current |= held(backlog, request(task_id="g0"), request(task_id="g1"), queue="gpu")
    published = backlog.take({"default": 1, "gpu": 1}, current, 0.0)
    assert sorted(r.task_id for r, _ in published) == ["d0", "g0"]
    del current[request(task_id="d2").ti_key]
    assert sorted((r.task_id, q) for r, q in backlog.held(current)) == [("d1", "default"), ("g1", "gpu")]


def test_held_requests_go_out_by_priority_then_older_runs_first() -> None:
    backlog = Backlog(queued_per_slot=0.0, queued_seconds=0.02)
    newer = request(run_id="0002", task_id="a")
    older = request(run_id="0001", task_id="b")
    urgent = request(run_id="0003", task_id="c", priority=5)
    current = held(backlog, newer, older, urgent)
    order = []
    for _ in range(3):
        [(taken, _queue)] = backlog.take({"default": 1}, current, 0.0)
        order.append(taken.task_id)
        backlog.finished(taken.ti_key, 0.0, 1.0)
    assert order == ["c", "b", "a"]


def test_each_queue_is_bounded_by_its_own_slots() -> None:
    backlog = Backlog(queued_per_slot=0.0, queued_seconds=0.02)
    current = held(backlog, *(request(task_id=f"d{i}") for i in range(5)))
    current |= held(backlog, *(request(task_id=f"g{i}") for i in range(5)), queue="gpu")
    taken = backlog.take({"default": 2, "gpu": 1}, current, 0.0)
    assert sorted(q for _, q in taken) == ["default", "default", "gpu"]


def slots(capacity: dict[str, QueueCapacity]) -> dict[str, int]:
    return {queue: c.slots for queue, c in capacity.items()}


def test_live_slots_per_queue_come_from_heartbeats_heard_within_the_limit() -> None:
    tracker = LostWorkerTracker(interval=1.0)
    tracker.heartbeat(beat("cpu", ("default",), 2), set(), 0.0)
    tracker.heartbeat(beat("both", ("default", "gpu"), 1), set(), 1.0)
    assert slots(tracker.capacity(2.0)) == {"default": 3, "gpu": 1}
    assert slots(tracker.capacity(3.5)) == {"default": 1, "gpu": 1}, "cpu silent for 3 intervals: not counted"
    tracker.grace(10.0)
    assert slots(tracker.capacity(10.0)) == {"default": 3, "gpu": 1}, (
        "after a reconnect every worker gets its time"
    )


def test_the_cpus_of_a_queue_count_each_machine_once_and_no_more_than_its_slots() -> None:
    tracker = LostWorkerTracker(interval=1.0)
    tracker.heartbeat(beat("a", ("default",), 16, host="m1", cpus=2), set(), 0.0)
    tracker.heartbeat(beat("b", ("default", "gpu"), 4, host="m1", cpus=2), set(), 0.0)
    tracker.heartbeat(beat("c", ("default",), 1, host="m2", cpus=8), set(), 0.0)
    tracker.heartbeat(beat("d", ("gpu",), 3, host="m3"), set(), 0.0)
    assert tracker.capacity(1.0) == {
        "default": QueueCapacity(slots=21, cpus=2 + 1),
        "gpu": QueueCapacity(slots=7, cpus=2 + 3),
    }, "two workers of m1 share its 2 CPUs; m2's one slot uses one; d does not say: a CPU per slot"


def test_requests_whose_attempt_ended_while_held_are_dropped() -> None:
    backlog = Backlog(queued_per_slot=0.0, queued_seconds=0.02)
    first, second = request(task_id="a"), request(task_id="b")
    current = held(backlog, first, second)
    del current[first.ti_key]
    assert names(backlog.take({"default": 1}, current, 0.0)) == ["r1/b"]


def test_an_instance_queued_again_does_not_count_twice() -> None:
    backlog = Backlog(queued_per_slot=0.0, queued_seconds=0.02)
    once = request(task_id="a")
    current = held(backlog, once)
    assert len(backlog.take({"default": 1}, current, 0.0)) == 1
    again = replace(once)
    current = held(backlog, again)
    assert len(backlog.take({"default": 1}, current, 0.0)) == 0, "the first copy still counts until it ends"
    backlog.finished(once.ti_key, 0.0, 1.0)
    assert len(backlog.take({"default": 1}, current, 0.0)) == 1
    backlog.finished(once.ti_key, 0.0, 1.0)
    other = request(task_id="b")
    assert len(backlog.take({"default": 1}, held(backlog, other), 0.0)) == 1, (
        "one finish frees one place, not two"
    )


def sizes(messages: list[tuple[list[TaskRequest], str]]) -> list[int]:
    return [len(requests) for requests, _ in messages]


def runs_of(task_id: str, count: int, first: int = 0) -> list[TaskRequest]:
    """Requests of one task in `count` runs whose ids sort in the backlog's order (older runs first)."""
    return [request(task_id=task_id, run_id=f"r{i:03}") for i in range(first, first + count)]


def test_requests_of_a_short_task_share_messages_in_the_backlogs_order() -> None:
    backlog = Backlog(queued_per_slot=4.0, queued_seconds=0.1, bundle_seconds=0.02)
    current = held(backlog, *runs_of("t", 40))
    first = backlog.messages({"default": QueueCapacity(2, 2)}, current, 0.0)
    assert sizes(first) == [1, 1], "the task has not run yet: one per message"
    ended(backlog, [(r, q) for requests, q in first for r in requests], 0.1, 0.004, 0.004)
    messages = backlog.messages({"default": QueueCapacity(2, 2)}, current, 0.1)
    assert sizes(messages) == [5, 5], (
        "2 slots and 8 waiting (at most 4 per slot); 4 ms tasks: five run in 20 ms"
    )
    assert [r.run_id for requests, _ in messages for r in requests] == [f"r{i:03}" for i in range(2, 12)]
    assert {queue for _, queue in messages} == {"default"}
    ended(backlog, [(messages[0][0][0], "default")], 0.2, 0.004)
    refill = backlog.messages({"default": QueueCapacity(2, 2)}, current, 0.2)
    assert sizes(refill) == [], "one of ten ended: less than half the waiting share has room"


def test_free_slots_get_a_message_each_before_requests_share_one() -> None:
    backlog = Backlog(queued_per_slot=4.0, queued_seconds=0.1, bundle_seconds=0.02)
    current = held(backlog, *runs_of("t", 8))
    ended(backlog, backlog.take({"default": 1}, current, 0.0), 0.1, 0.001)
    taken = [(r, "default") for r in list(current.values())[:6]]
    assert sizes(backlog.bundle(taken, {"default": 4})) == [2, 2, 1, 1]
    assert sizes(backlog.bundle(taken, {"default": 0})) == [6]
    assert sizes(backlog.bundle(taken, {"default": 9})) == [1] * 6


def test_short_tasks_go_to_no_more_free_slots_than_their_workers_have_cpus() -> None:
    for cpus, expected in ((2, [5, 5]), (4, [3, 3, 2, 2]), (16, [1] * 10)):
        backlog = Backlog(queued_per_slot=0.0, queued_seconds=0.1, bundle_seconds=0.02)
        current = held(backlog, *runs_of("t", 11))
        ended(backlog, backlog.take({"default": 1}, current, 0.0), 0.1, 0.001)
        messages = backlog.messages({"default": QueueCapacity(16, cpus)}, current, 0.1)
        assert sizes(messages) == expected, f"16 free slots, {cpus} CPUs"
    slow = Backlog(queued_per_slot=0.0, queued_seconds=0.1, bundle_seconds=0.02)
    current = held(slow, *runs_of("t", 5))
    ended(slow, slow.take({"default": 1}, current, 0.0), 0.1, 0.5)
    assert sizes(slow.messages({"default": QueueCapacity(16, 2)}, current, 0.1)) == [1] * 4, (
        "long tasks: a message each, whatever the CPUs"
    )


def test_long_tasks_and_a_bundle_time_of_zero_get_one_message_each() -> None:
    slow = Backlog(queued_per_slot=4.0, queued_seconds=0.1, bundle_seconds=0.02)
    off = Backlog(queued_per_slot=4.0, queued_seconds=0.1, bundle_seconds=0.0)
    for backlog, ran_for in ((slow, 0.011), (off, 0.0)):
        current = held(backlog, *runs_of("t", 5))
        ended(backlog, backlog.take({"default": 1}, current, 0.0), 0.1, ran_for)
        taken = [(r, "default") for r in list(current.values())[1:]]
        assert sizes(backlog.bundle(taken, {"default": 0})) == [1, 1, 1, 1]
    instant = Backlog(queued_per_slot=4.0, queued_seconds=0.1, bundle_seconds=0.02)
    current = held(instant, *runs_of("t", 17))
    ended(instant, instant.take({"default": 1}, current, 0.0), 0.1, 0.0)
    taken = [(r, "default") for r in list(current.values())[1:]]
    assert sizes(instant.bundle(taken, {"default": 0})) == [MAX_BUNDLE, MAX_BUNDLE]


def test_a_task_is_bundled_by_its_own_pace_not_its_queues() -> None:
    backlog = Backlog(queued_per_slot=4.0, queued_seconds=0.1, bundle_seconds=0.02)
    short, long = runs_of("short", 4), runs_of("long", 2, first=10)
    current = held(backlog, short[0], long[0])
    ended(backlog, backlog.take({"default": 2}, current, 0.0), 0.1, 0.001, 0.5)
    unknown = request(task_id="new", run_id="r005")
    taken = [(r, "default") for r in (short[1], long[1], short[2], unknown, short[3])]
    messages = backlog.bundle(taken, {"default": 0})
    assert [[r.task_id for r in requests] for requests, _ in messages] == [
        ["short", "short", "short"],
        ["long"],
        ["new"],
    ], "after short tasks, a long one and one not run yet go alone; the messages keep the backlog's order"
    other_dag = request(task_id="short", dag_id="another", run_id="r006")
    assert backlog.pace(other_dag) is None, "a task's pace is its own DAG's task's"
    assert backlog.pace(short[1]) == 0.001


def test_a_tasks_pace_is_its_last_runs_of_the_tasks_run_most_recently() -> None:
    paces = TaskPaces()
    for seconds in (9.0, 1.0, 2.0, 3.0, 4.0):
        paces.ran(("d", "t"), seconds)
    assert paces.of(("d", "t")) == 2.5, f"the mean of the last {PACE_RUNS}"
    for i in range(PACED_TASKS):
        paces.ran(("d", f"other{i}"), 1.0)
    assert paces.of(("d", "t")) is None, "forgotten: the least recently run"
    assert paces.of(("d", "other0")) == 1.0


def test_the_supervisor_reads_what_a_slot_runs_from_its_pipe() -> None:
    read, write = os.pipe()
    try:
        reporter, state = SlotReporter(write), SlotState()
        task = SlotTask("r1:t:-1:1", RunningTask("r1", "t", -1, 1, "zonda.events.s1"))
        reporter.ready()
        reporter.started(task)
        data = os.read(read, 65536)
        state.feed(data[:7])
        assert not state.ready, "half a line waits for the rest"
        state.feed(data[7:])
        assert state.ready and state.current == task
        reporter.ended()
        state.feed(os.read(read, 65536))
        assert state.current is None
        assert all(json.loads(line) for line in data.splitlines())
    finally:
        os.close(read)
        os.close(write)


def test_slots_are_named_after_their_worker() -> None:
    assert slot_node("celery@bench-w1", 2) == "celery-2@bench-w1"


def test_a_slot_that_keeps_dying_is_started_again_later_and_later() -> None:
    keys = worker_keys([Fernet.generate_key()], SHARED)
    settings = Settings(broker_url="redis://127.0.0.1:1/0", worker_keys=keys)
    supervisor = WorkerSupervisor(settings, "w@host", ["default"], 2)
    delays = [supervisor._next_delay(0) for _ in range(9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert supervisor._next_delay(1) == 0.5, "each slot has its own back-off"


def test_a_worker_stopped_before_it_was_ready_stops_its_heartbeat_cleanly() -> None:
    keys = WorkerKeys(worker_keys([Fernet.generate_key()], SHARED))
    beats = HeartbeatSender(
        make_app(Settings(broker_url="redis://127.0.0.1:1/0")), "w@host", ["q"], 1, 1.0, list, keys
    )
    beats.stop()  # never started: nothing to join
    assert beats.beat().running == ()


def test_a_workers_cpus_are_its_affinity_lowered_to_its_cgroups_quota(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    proc, fs = tmp_path / "cgroup", tmp_path / "fs"
    proc.write_text("0::/team-a/worker\n")
    limits = fs / "team-a" / "worker"
    limits.mkdir(parents=True)
    for cpu_max, expected in (("50000 100000", 1), ("max 100000", affinity), ("garbled", affinity)):
        (limits / "cpu.max").write_text(cpu_max + "\n")
        assert usable_cpus(proc, fs) == expected, cpu_max
    (limits / "cpu.max").write_text(f"{(affinity + 4) * 100000} 100000\n")
    assert usable_cpus(proc, fs) == affinity, "a quota above the affinity does not add CPUs"
    assert usable_cpus(tmp_path / "missing", fs) == affinity
    assert cgroup_cpu_quota(tmp_path / "missing", fs) is None


def test_cgroup_quotas_are_read_from_v1_v2_and_a_containers_own_view(tmp_path: Path) -> None:
    proc, fs = tmp_path / "cgroup", tmp_path / "fs"
    v1 = fs / "cpu,cpuacct" / "kubepods" / "pod1"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("250000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    proc.write_text("4:cpu,cpuacct:/kubepods/pod1\n1:name=systemd:/kubepods/pod1\n0::/kubepods/pod1\n")
    assert cgroup_cpu_quota(proc, fs) == 2.5, "the cpu controller on v1 wins over an empty v2 group"
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(proc, fs) is None, "v1 without a quota"
    own = fs / "cpu,cpuacct"
    (own / "cpu.cfs_quota_us").write_text("100000\n")
    (own / "cpu.cfs_period_us").write_text("100000\n")
    proc.write_text("4:cpu,cpuacct:/kubepods/pod2\n")
    assert cgroup_cpu_quota(proc, fs) == 1.0, (
        "the host's path is not there: the mount is the container's group"
    )
    (fs / "cpu.max").write_text("150000 100000\n")
    proc.write_text("0::/not/visible\n")
    assert cgroup_cpu_quota(proc, fs) == 1.5, "v2, from inside a container"
    proc.write_text("1:name=systemd:/\n")
    assert cgroup_cpu_quota(proc, fs) is None, "no cpu controller at all"


def test_a_parent_groups_quota_limits_its_children(tmp_path: Path) -> None:
    proc, fs = tmp_path / "cgroup", tmp_path / "fs"
    pod = fs / "kubepods.slice" / "pod1"
    container = pod / "cri-containerd-1.scope"
    container.mkdir(parents=True)
    (fs / "cpu.max").write_text("garbage\n")
    (pod / "cpu.max").write_text("150000 100000\n")
    (container / "cpu.max").write_text("max 100000\n")
    proc.write_text("0::/kubepods.slice/pod1/cri-containerd-1.scope\n")
    assert cgroup_cpu_quota(proc, fs) == 1.5, "the pod's quota, the container having none"
    (container / "cpu.max").write_text("100000 100000\n")
    assert cgroup_cpu_quota(proc, fs) == 1.0, "the smallest of the group's and its ancestors'"
    v1 = fs / "cpu,cpuacct" / "kubepods" / "pod1"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    (v1.parent / "cpu.cfs_quota_us").write_text("300000\n")
    (v1.parent / "cpu.cfs_period_us").write_text("100000\n")
    proc.write_text("4:cpu,cpuacct:/kubepods/pod1\n")
    assert cgroup_cpu_quota(proc, fs) == 3.0, "v1 too"
