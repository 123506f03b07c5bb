"""The in-memory state of one run: readiness, mapping, retries and trigger rules, without I/O.

A finished task updates the upstream tallies of its downstream tasks only (O(out-degree)), so
readiness never needs a query. Every change is recorded in `changes` for the caller to persist
in one batch; tasks that became ready are listed in `changes.scheduled` for the caller to queue.
This module is over the usual size because it is the one place where these rules meet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from zonda.core.mapping import map_count
from zonda.core.outputs import ArtifactRef
from zonda.core.retry import max_tries, retry_delay
from zonda.core.spec import DagSpec, MapSource, TaskSpec
from zonda.core.states import TASK_FINISHED, RunState, TaskState
from zonda.core.trigger_rules import UpstreamTally, Verdict, evaluate

TIKey = tuple[str, int]
UNMAPPED = -1


@dataclass(slots=True)
class TaskInstance:
    """One task (and map index) in one run: the in-memory mirror of its DB row."""

    task_id: str
    map_index: int = UNMAPPED
    state: TaskState = TaskState.PENDING
    try_number: int = 0
    max_tries: int = 1
    queued_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    next_try_at: datetime | None = None
    output: ArtifactRef | None = None
    length: int | None = None
    error: str | None = None

    @property
    def key(self) -> TIKey:
        return (self.task_id, self.map_index)


@dataclass(slots=True)
class Attempt:
    """A finished attempt, kept as history (each attempt has its own log)."""

    task_id: str
    map_index: int
    try_number: int
    state: TaskState
    queued_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    error: str | None


@dataclass
class Changes:
    """What changed since the caller last persisted: rows to insert, update, delete; work to queue."""

    inserted: set[TIKey] = field(default_factory=set)
    updated: set[TIKey] = field(default_factory=set)
    deleted: set[TIKey] = field(default_factory=set)
    attempts: list[Attempt] = field(default_factory=list)
    scheduled: list[TIKey] = field(default_factory=list)
    retries: list[TIKey] = field(default_factory=list)
    run_changed: bool = False

    def __bool__(self) -> bool:
        return bool(self.inserted or self.updated or self.deleted or self.attempts or self.run_changed)


@dataclass(slots=True)
class _Node:
    spec: TaskSpec
    downstream: list[str]
    tally: UpstreamTally
    instances: dict[int, TaskInstance]
    remaining: int = 0
    decided: bool = False
    outcome: TaskState | None = None


class RunGraph:
    """Readiness and state transitions of every task instance of one run."""

    def __init__(
        self,
        run_id: str,
        spec: DagSpec,
        params: Mapping[str, Any],
        instances: Iterable[TaskInstance],
        state: RunState = RunState.RUNNING,
    ) -> None:
        self.run_id = run_id
        self.spec = spec
        self.params = dict(params)
        self.state = state
        self.ended_at: datetime | None = None
        self.changes = Changes()
        self._nodes: dict[str, _Node] = {
            t.task_id: _Node(t, [], UpstreamTally(len(t.upstream)), {}) for t in spec.tasks
        }
        for t in spec.tasks:
            for up in t.upstream:
                self._nodes[up].downstream.append(t.task_id)
        for ti in instances:
            self._nodes[ti.task_id].instances[ti.map_index] = ti
        self._open_nodes = 0

    @classmethod
    def new(cls, run_id: str, spec: DagSpec, params: Mapping[str, Any]) -> RunGraph:
        """A run with every task pending (mapped tasks hold one placeholder until they expand)."""
        instances = [TaskInstance(t.task_id, max_tries=max_tries(t)) for t in spec.tasks]
        graph = cls(run_id, spec, params, instances)
        graph.changes.inserted.update(ti.key for ti in instances)
        return graph

    # -- queries -------------------------------------------------------------------------------

    def instance(self, key: TIKey) -> TaskInstance:
        return self._nodes[key[0]].instances[key[1]]

    def instances(self) -> Iterable[TaskInstance]:
        for node in self._nodes.values():
            yield from node.instances.values()

    def upstream_outputs(self, task_id: str) -> dict[str, ArtifactRef | list[ArtifactRef] | None]:
        """The return values a task receives: one per data upstream; a list for a mapped upstream."""
        result: dict[str, ArtifactRef | list[ArtifactRef] | None] = {}
        for up in self._nodes[task_id].spec.data_upstream:
            node = self._nodes[up]
            if node.spec.is_mapped:
                outs = [node.instances[i].output for i in sorted(node.instances) if i != UNMAPPED]
                result[up] = [o for o in outs if o is not None]
            else:
                result[up] = node.instances[UNMAPPED].output
        return result

    def map_lengths(self, task_id: str) -> list[int]:
        """Lengths of the lists a mapped task is mapped over (known once its upstream tasks ended)."""
        return [self._source_length(s) for s in self._nodes[task_id].spec.map_sources]

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, now: datetime) -> None:
        """Derive tallies from the instances' states and decide every task that can be decided."""
        self._open_nodes = 0
        for ti in self.instances():
            if ti.state is TaskState.SCHEDULED:
                self.changes.scheduled.append(ti.key)
            elif ti.state is TaskState.UP_FOR_RETRY:
                self.changes.retries.append(ti.key)
        for node in self._nodes.values():
            node.tally = UpstreamTally(len(node.spec.upstream))
            node.decided = any(ti.state is not TaskState.PENDING for ti in node.instances.values())
            node.remaining = sum(1 for ti in node.instances.values() if not ti.state.finished)
            node.outcome = _aggregate(node) if node.remaining == 0 else None
            self._open_nodes += node.outcome is None
        for node in self._nodes.values():
            if node.outcome is not None:
                for down in node.downstream:
                    self._nodes[down].tally.add(node.outcome)
        for node in self._nodes.values():
            if not node.decided:
                self._decide(node, now)
        self._check_run_done(now)

    def mark_queued(self, key: TIKey, now: datetime) -> int:
        """The instance was handed to an executor; returns its new try number."""
        ti = self.instance(key)
        ti.state = TaskState.QUEUED
        ti.try_number += 1
        ti.queued_at = now
        ti.started_at = ti.ended_at = ti.next_try_at = None
        ti.error = None
        self.changes.updated.add(key)
        return ti.try_number

    def restore_attempt(self, key: TIKey, try_number: int, queued_at: datetime | None) -> bool:
        """Recovery: an attempt a worker reported may be newer than the stored state (queued and
        sent before it was stored, a retry included); adopt it."""
        ti = self.instance(key)
        resumable = (TaskState.SCHEDULED, TaskState.QUEUED, TaskState.RUNNING)
        retried = ti.state is TaskState.UP_FOR_RETRY and try_number > ti.try_number
        if (ti.state not in resumable and not retried) or ti.try_number > try_number:
            return False
        ti.state, ti.try_number = TaskState.QUEUED, try_number
        ti.queued_at = ti.queued_at or queued_at
        ti.next_try_at = None
        self.changes.updated.add(key)
        return True

    def mark_running(self, key: TIKey, try_number: int, started_at: datetime) -> None:
        ti = self.instance(key)
        if ti.try_number != try_number or ti.state is not TaskState.QUEUED:
            return
        ti.state = TaskState.RUNNING
        ti.started_at = started_at
        self.changes.updated.add(key)

    def finish(
        self,
        key: TIKey,
        try_number: int,
        *,
        ok: bool,
        now: datetime,
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
        output: ArtifactRef | None = None,
        length: int | None = None,
        error: str | None = None,
    ) -> None:
        """Record the end of an attempt: success, a retry, or a final failure. Stale reports are ignored."""
        ti = self.instance(key)
        if ti.try_number != try_number or not ti.state.in_flight:
            return
        ti.started_at = started_at or ti.started_at or now
        ti.ended_at = ended_at or now
        ti.error = error
        node = self._nodes[key[0]]
        if ok:
            ti.output, ti.length = output, length
            self._settle(ti, TaskState.SUCCESS, now)
        elif ti.try_number < ti.max_tries:
            self._record_attempt(ti, TaskState.UP_FOR_RETRY)
            ti.state = TaskState.UP_FOR_RETRY
            ti.next_try_at = now + timedelta(seconds=retry_delay(node.spec, ti.try_number))
            self.changes.updated.add(key)
            self.changes.retries.append(key)
        else:
            self._settle(ti, TaskState.FAILED, now)

    def requeue(self, key: TIKey) -> None:
        """An in-flight attempt was interrupted by a server restart: run it again, same try number."""
        ti = self.instance(key)
        if not ti.state.in_flight:
            return
        ti.state = TaskState.SCHEDULED
        ti.try_number -= 1
        self.changes.updated.add(key)
        self.changes.scheduled.append(key)

    def retry_due(self, key: TIKey) -> None:
        """The retry delay of an instance is over: it is ready again."""
        ti = self.instance(key)
        if ti.state is TaskState.UP_FOR_RETRY:
            ti.state = TaskState.SCHEDULED
            ti.next_try_at = None
            self.changes.updated.add(key)
            self.changes.scheduled.append(key)

    def fail(self, key: TIKey, error: str, now: datetime) -> None:
        """End an instance that cannot run at all (e.g. an unknown pool), without retries."""
        ti = self.instance(key)
        if ti.state.finished:
            return
        ti.error = error
        ti.ended_at = now
        self._settle(ti, TaskState.FAILED, now)

    def cancel(self, reason: str, now: datetime) -> list[TIKey]:
        """Stop the run now; returns the instances in flight, for the executor to kill.

        Instances that started (in flight or waiting to retry) fail with `reason`; those that never
        started are skipped. No trigger rule is evaluated, so nothing else starts (not even an
        `all_done` clean-up task), and late reports of the killed attempts are ignored.
        """
        if self.state.finished:
            return []
        in_flight = [ti.key for ti in self.instances() if ti.state.in_flight]
        for ti in self.instances():
            if ti.state.finished:
                continue
            started = ti.state.in_flight or ti.state is TaskState.UP_FOR_RETRY
            ti.state = TaskState.FAILED if started else TaskState.SKIPPED
            ti.error = reason if started else ti.error
            ti.ended_at, ti.next_try_at = now, None
            self.changes.updated.add(ti.key)
            if started and ti.try_number:
                self._record_attempt(ti, TaskState.FAILED)
        for node in self._nodes.values():
            node.decided = True
        self._open_nodes = 0
        self.state = RunState.FAILED
        self.ended_at = now
        self.changes.run_changed = True
        return in_flight

    def mark(
        self, task_id: str, map_index: int | None, state: TaskState, note: str, now: datetime
    ) -> list[TIKey]:
        """Set a task's instances (or one map index) to SUCCESS or FAILED by hand, as if they ended so.

        Returns the instances that were in flight, for the executor to kill (their late reports are
        ignored). Undecided downstream tasks then start or not by their trigger rules; downstream
        tasks that already ended keep their state until they are cleared. A task marked successful
        has no return value: tasks that take it receive None.
        """
        if state not in (TaskState.SUCCESS, TaskState.FAILED):
            raise ValueError(f"a task can be marked success or failed, not {state}")
        node = self._nodes[task_id]
        targets = [
            ti
            for ti in node.instances.values()
            if (map_index is None or ti.map_index == map_index) and ti.state is not state
        ]
        in_flight = [ti.key for ti in targets if ti.state.in_flight]
        for ti in targets:
            ti.ended_at, ti.next_try_at = now, None
            if ti.state.in_flight and ti.try_number:
                ti.error = note  # the interrupted attempt's history says who ended it
                self._record_attempt(ti, state)
            ti.state = state
            ti.error = note if state is TaskState.FAILED else None
            self.changes.updated.add(ti.key)
        if targets:
            self.state, self.ended_at = RunState.RUNNING, None
            self.changes.run_changed = True
            self.start(now)
        return in_flight

    def clear(self, task_ids: Iterable[str] | None, downstream: bool, now: datetime) -> list[TIKey]:
        """Reset tasks to run again (default: every failed one); successful work is kept."""
        targets = set(task_ids) if task_ids is not None else self._failed_task_ids()
        if downstream:
            targets = self._with_downstream(targets)
        cleared: list[TIKey] = []
        for task_id in targets:
            cleared.extend(self._reset_node(self._nodes[task_id]))
        if cleared:
            self.state = RunState.RUNNING
            self.ended_at = None
            self.changes.run_changed = True
            self.start(now)
        return cleared

    # -- internals -----------------------------------------------------------------------------

    def _settle(self, ti: TaskInstance, state: TaskState, now: datetime) -> None:
        ti.state = state
        if ti.ended_at is None:
            ti.ended_at = now
        self.changes.updated.add(ti.key)
        if ti.try_number:
            self._record_attempt(ti, state)
        node = self._nodes[ti.task_id]
        node.remaining -= 1
        if node.remaining == 0:
            self._node_done(node, now)

    def _record_attempt(self, ti: TaskInstance, state: TaskState) -> None:
        self.changes.attempts.append(
            Attempt(
                ti.task_id,
                ti.map_index,
                ti.try_number,
                state,
                ti.queued_at,
                ti.started_at,
                ti.ended_at,
                ti.error,
            )
        )

    def _node_done(self, node: _Node, now: datetime) -> None:
        node.outcome = _aggregate(node)
        self._open_nodes -= 1
        for down_id in node.downstream:
            down = self._nodes[down_id]
            down.tally.add(node.outcome)
            if not down.decided:
                self._decide(down, now)
        self._check_run_done(now)

    def _decide(self, node: _Node, now: datetime) -> None:
        verdict = evaluate(node.spec.trigger_rule, node.tally)
        if verdict is Verdict.WAIT:
            return
        node.decided = True
        if verdict is Verdict.RUN:
            self._make_ready(node, now)
        else:
            state = TaskState.SKIPPED if verdict is Verdict.SKIP else TaskState.UPSTREAM_FAILED
            for ti in list(node.instances.values()):
                self._settle(ti, state, now)

    def _make_ready(self, node: _Node, now: datetime) -> None:
        if node.spec.is_mapped:
            self._expand(node, now)
            return
        ti = node.instances[UNMAPPED]
        ti.state = TaskState.SCHEDULED
        self.changes.updated.add(ti.key)
        self.changes.scheduled.append(ti.key)

    def _expand(self, node: _Node, now: datetime) -> None:
        placeholder = node.instances[UNMAPPED]
        try:
            count = map_count(self.map_lengths(node.spec.task_id))
        except MappingError as exc:
            placeholder.error = str(exc)
            self._settle(placeholder, TaskState.FAILED, now)
            return
        if count == 0:
            self._settle(placeholder, TaskState.SKIPPED, now)
            return
        del node.instances[UNMAPPED]
        self._forget(placeholder.key)
        node.remaining = count
        for i in range(count):
            ti = TaskInstance(node.spec.task_id, i, TaskState.SCHEDULED, max_tries=placeholder.max_tries)
            node.instances[i] = ti
            self.changes.inserted.add(ti.key)
            self.changes.scheduled.append(ti.key)

    def _forget(self, key: TIKey) -> None:
        if key in self.changes.inserted:
            self.changes.inserted.discard(key)
        else:
            self.changes.deleted.add(key)
        self.changes.updated.discard(key)

    def _source_length(self, source: MapSource) -> int:
        if source.kind == "literal":
            return source.length
        if source.kind == "param":
            value = self.params.get(source.ref)
            if not isinstance(value, list | tuple):
                raise MappingError(f"cannot map over param '{source.ref}': it is not a list")
            return len(value)
        up = self._nodes[source.ref]
        if up.spec.is_mapped:
            return sum(1 for i in up.instances if i != UNMAPPED)
        length = up.instances[UNMAPPED].length
        if length is None:
            raise MappingError(
                f"cannot map over the result of task '{source.ref}': it did not return a list or tuple"
            )
        return length

    def _reset_node(self, node: _Node) -> list[TIKey]:
        if not all(ti.state.finished for ti in node.instances.values()):
            return []
        if node.spec.is_mapped:
            for ti in node.instances.values():
                self._forget(ti.key)
            node.instances = {UNMAPPED: TaskInstance(node.spec.task_id)}
            self.changes.inserted.add((node.spec.task_id, UNMAPPED))
        for ti in node.instances.values():
            ti.max_tries = max_tries(node.spec, ti.try_number)
            ti.state = TaskState.PENDING
            ti.queued_at = ti.started_at = ti.ended_at = ti.next_try_at = None
            ti.output, ti.length, ti.error = None, None, None
            if ti.key not in self.changes.inserted:
                self.changes.updated.add(ti.key)
        return [ti.key for ti in node.instances.values()]

    def _failed_task_ids(self) -> set[str]:
        bad = (TaskState.FAILED, TaskState.UPSTREAM_FAILED)
        return {
            n.spec.task_id for n in self._nodes.values() if any(t.state in bad for t in n.instances.values())
        }

    def _with_downstream(self, task_ids: set[str]) -> set[str]:
        found, todo = set(task_ids), list(task_ids)
        while todo:
            for down in self._nodes[todo.pop()].downstream:
                if down not in found:
                    found.add(down)
                    todo.append(down)
        return found

    def _check_run_done(self, now: datetime) -> None:
        if self._open_nodes or self.state.finished:
            return
        failed = any(ti.state in (TaskState.FAILED, TaskState.UPSTREAM_FAILED) for ti in self.instances())
        self.state = RunState.FAILED if failed else RunState.SUCCESS
        self.ended_at = now
        self.changes.run_changed = True


class MappingError(Exception):
    """A mapped task's input is not a list; the instance fails with this message."""


def _aggregate(node: _Node) -> TaskState:
    states = {ti.state for ti in node.instances.values()}
    for state in (TaskState.FAILED, TaskState.UPSTREAM_FAILED):
        if state in states:
            return state
    if states == {TaskState.SKIPPED}:
        return TaskState.SKIPPED
    assert states <= TASK_FINISHED, states
    return TaskState.SUCCESS
