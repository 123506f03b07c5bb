"""The scheduler's event loop: react to worker messages, timers and wake-ups; write in batches.

Each step waits on the workers' pipes and the wake-up socket, applies what arrived to the
in-memory run graphs, dispatches ready work, then writes every change of the step in one
transaction. Work goes out before the commit: for local workers their outcome journals make that
safe; a remote executor's requests go out so only while the run's lease is fresh, and a scheduler
that takes the run over holds back the attempts that may have gone (ADR 0005). The DB is polled only
when woken or as a safety net every `safety_poll_interval` seconds.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from datetime import datetime, timedelta
from multiprocessing.connection import wait
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from zonda.clock import utc_now
from zonda.core.ids import tenant_of
from zonda.core.quotas import admit
from zonda.core.run_graph import RunGraph, TaskInstance, TIKey
from zonda.core.states import RunState, TaskState
from zonda.db import components, leases, quotas
from zonda.db.clock import DbClock
from zonda.db.commands import pending_commands
from zonda.db.engine import read_txn, write_txn
from zonda.db.pools import pool_sizes
from zonda.db.runs import dag_of
from zonda.errors import NotFoundError
from zonda.executors.base import Executor, QueuedAttempt, TIRef
from zonda.scheduler.active import ActiveRun, Versions
from zonda.scheduler.heartbeats import PRUNE_INTERVAL, heartbeat_write
from zonda.scheduler.inherited import Inherited, sends_before_commit
from zonda.scheduler.limits import TENANT_QUOTA, UNKNOWN_POOL, Limits
from zonda.scheduler.ownership import dead_local_schedulers, new_scheduler_id
from zonda.scheduler.persistence import RunRow, collect, load_runs, runs_in_state
from zonda.scheduler.ready_queue import ReadyQueue
from zonda.scheduler.recovery import apply_finished, restore_outcomes
from zonda.scheduler.requests import ApiAccess, RunInfo, build_request
from zonda.scheduler.schedules import fire_due
from zonda.scheduler.secrets import TenantSecrets
from zonda.scheduler.timers import Timer, Timers
from zonda.scheduler.wakeup import TOPICS, Listener
from zonda.scheduler.writer import Batch, Lease, Writer
from zonda.settings import Settings
from zonda.worker.protocol import TaskFinished, TaskRequest, TaskStarted, WorkerMessage

log = logging.getLogger(__name__)
DEADLINE_GRACE = timedelta(seconds=5)
QUEUED_RECHECKS = 4
"""A queued attempt whose request is not (yet) lost is checked again after this part of `queued_timeout`."""
DB_RETRY_DELAY = timedelta(seconds=1)
INHERITED_CHECK = timedelta(seconds=1)
"""How often attempts held back after a takeover are checked (at most; see `_release_inherited`)."""
STOP_WRITE_TIMEOUT = 10.0
"""Seconds a stopping scheduler waits for its last changes to commit (an unreachable DB): nothing is
lost when it gives up, since workers' outcomes stay journaled or on the broker until committed."""

Clock = Callable[[], datetime]


class Scheduler:
    """Owns the active runs, decides with `RunGraph`, dispatches to an executor, persists in batches.
    `clock` is this machine's; the scheduler reads the time through it as the DB's (`DbClock`)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        executor: Executor,
        listener: Listener | None = None,
        clock: Clock = utc_now,
        scheduler_id: str | None = None,
    ) -> None:
        self.settings, self.engine, self.executor, self.listener = settings, engine, executor, listener
        self.secrets = TenantSecrets(settings)
        self.api = ApiAccess.of(settings)
        self.clock = DbClock(clock)
        self.runs: dict[str, ActiveRun] = {}
        self.ready = ReadyQueue()
        self.timers = Timers()
        self.versions = Versions(settings.code_dir)
        self.limits = Limits()
        self.inflight: dict[TIRef, ActiveRun] = {}
        self._dirty: set[str] = set()
        self._dirty_since: datetime | None = None
        self._applied: list[tuple[int, str]] = []
        self._commands_wait = False
        """A command waits for a run to end (a clear beyond its DAG's or tenant's limits)."""
        self._applying: dict[int, str] = {}
        """Commands (id: run id) applied and not yet committed."""
        self._write_window = timedelta(seconds=settings.scheduler_write_window)
        self._seq = itertools.count()
        self._next_poll = self._next_heartbeat = self.clock()
        self._schedule_timer: datetime | None = None
        self._topics: set[str] = set(TOPICS)
        self.writer = Writer(engine)
        self._lease = timedelta(seconds=settings.scheduler_lease_seconds)
        self._queued_timeout = timedelta(seconds=settings.queued_timeout)
        self._next_orphan_check = self.clock()
        self._next_renewal = self.clock()
        self._reaching = True
        self._next_prune = self.clock()
        self._db_retry_at = self.clock()
        self._followed: set[str] = set()
        self._outbox: list[TaskRequest] = []
        self.component_id = scheduler_id or new_scheduler_id()
        self._followed_records: list[TaskFinished] = []
        self._lost: dict[TIRef, tuple[ActiveRun, TaskInstance]] = {}
        self._withdrawn: set[TIRef] = set()
        """Attempts withdrawn and queued again: their next request is stored before it is sent (its
        task id derives from the stored `queued_at`)."""
        self._held_inherited: dict[TIRef, tuple[ActiveRun, TaskRequest]] = {}
        """Ready attempts of taken-over runs that the previous scheduler may have published."""
        self._next_inherited_check = self.clock()
        self._early_reports: dict[TIRef, list[WorkerMessage]] = {}
        """Reports of inherited attempts whose instances were not yet ready here."""

    # -- lifecycle -----------------------------------------------------------------------------

    def serve(self, stop: threading.Event) -> None:
        """Run until `stop` is set; unfinished runs are resumed by the next scheduler."""
        self.executor.start()
        self._register()
        try:
            self.recover()
            while not stop.is_set():
                self.step(max_wait=0.5)
        finally:
            for message in self.executor.poll():
                self._on_message(message, self.clock())
            stored = self._write_last_changes()
            self.writer.stop()
            self.executor.stop()
            if stored:
                self._unregister()
            else:
                log.error(
                    "stopping without writing the last changes of %d run(s): the DB did not answer for %.0f s. "
                    "Their outcomes stay where the workers left them (journals, or reports the broker keeps), "
                    "and the scheduler that takes these runs over once their leases run out records them",
                    len(self.runs),
                    STOP_WRITE_TIMEOUT,
                )
            if self.listener is not None:
                self.listener.close()

    def _write_last_changes(self) -> bool:
        """Write what is gathered and wait, at most `STOP_WRITE_TIMEOUT` in all, for it and for a
        batch already in flight (which nothing new to write would not wait for); True if all committed."""
        deadline = time.monotonic() + STOP_WRITE_TIMEOUT
        self._flush(self.clock(), force=True, wait=STOP_WRITE_TIMEOUT)
        self._on_committed(self.writer.wait_idle(max(0.0, deadline - time.monotonic())))
        return not self.writer.busy

    def recover(self) -> None:
        """Take over the runs of dead schedulers of this machine: journaled outcomes, in-flight work."""
        now = self.clock()
        with write_txn(self.engine) as conn:
            dead = dead_local_schedulers(conn, self.component_id)
            for component_id in dead:
                self._follow(component_id)
            claimed: dict[str, list[str]] = {}
            for run_id, owner in leases.held_by(conn, dead):
                if leases.claim_from(conn, run_id, self.component_id, self._lease_until(now), owner):
                    claimed.setdefault(owner, []).append(run_id)
            for owner, run_ids in claimed.items():
                self._adopt(conn, run_ids, now, previous_owner=owner)
            for component_id in dead:
                components.unregister(conn, component_id)
        records = len(self._followed_records)
        self._resume_all(list(self.runs.values()), now, unclean=set(self.runs))
        self._flush(now, force=True)
        log.info("scheduler resumed %d run(s), %d journaled outcome(s)", len(self.runs), records)

    def step(self, max_wait: float = 0.5) -> None:
        """One turn of the loop: wait for news, apply it, dispatch, persist."""
        waitables: list[Any] = [*self.executor.waitables(), self.writer]
        if self.listener is not None:
            waitables.append(self.listener)
        woken: list[Any] = list(wait(waitables, self._timeout(max_wait)))
        now = self.clock()
        if self.listener is not None and any(w is self.listener for w in woken):
            self._topics |= self.listener.drain()
        if any(w is self.writer for w in woken):
            self._on_committed(self.writer.committed())
        for message in self.executor.poll():
            self._on_message(message, now)
        for timer in self.timers.pop_due(now):
            self._on_timer(timer, now)
        self._note_reach()
        self._queue_lost_again(now)
        self._release_inherited(now)
        if (
            self._topics or now >= self._next_poll or now >= self._next_orphan_check
        ) and now >= self._db_retry_at:
            self._poll_db_safely(now)
        self._dispatch(now)
        self._flush(now)

    # -- events --------------------------------------------------------------------------------

    def _on_message(self, message: WorkerMessage, now: datetime) -> None:
        active = self.runs.get(message.run_id)
        if active is None:
            self._pass_on(message)
            return
        key = (message.task_id, message.map_index)
        if active.inherited is not None and not self._accept_inherited(active, key, message):
            return
        if isinstance(message, TaskStarted):
            active.graph.mark_running(key, message.try_number, message.started_at)
            self._mark_dirty(active)
            return
        if isinstance(message, TaskFinished):
            self._release(message.ti_key, active)
            apply_finished(active.graph, message, now)
        self._collect(active)

    def _accept_inherited(self, active: ActiveRun, key: TIKey, message: WorkerMessage) -> bool:
        """A report of an attempt the run's previous scheduler may have sent without storing it: the
        attempt is in flight (or ended), so it is queued here under its try number and counted as
        running. The previous scheduler's reports come back in no set order: one that comes before
        its task is ready here (its upstream's report is still to come) is kept until it is, and
        False returned."""
        assert active.inherited is not None
        try_number = message.try_number
        if not self._has(active, key) or not active.inherited.covers(key, try_number):
            return True
        ti = active.graph.instance(key)
        if ti.state is TaskState.PENDING or (ti.state.in_flight and ti.try_number < try_number):
            self._early_reports.setdefault((active.run_id, *key), []).append(message)
            return False
        if ti.state not in (TaskState.SCHEDULED, TaskState.UP_FOR_RETRY):
            return True
        active.graph.restore_attempt(key, try_number, None)
        active.inherited.settle(key)
        ref = (active.run_id, *key)
        self._held_inherited.pop(ref, None)
        self.inflight[ref] = active
        self.limits.take(active.tenant, active.dag_id, active.version.spec.task(key[0]))
        self._mark_dirty(active)
        return True

    def _pass_on(self, message: WorkerMessage) -> None:
        """A report for a run this scheduler does not hold: send it to the run's owner, if any."""
        forward = getattr(self.executor, "forward", None)
        try:
            with read_txn(self.engine) as conn:
                owner = leases.owner_of(conn, message.run_id)
        except DBAPIError:
            owner = None
        if forward is not None and owner and owner != self.component_id:
            forward(message, owner)
            return
        if owner == self.component_id:
            log.debug("late %s for run %s, which already ended here", type(message).__name__, message.run_id)
            return
        log.warning(
            "%s for run %s, held by %s, cannot be delivered; ignored",
            type(message).__name__,
            message.run_id,
            owner,
        )

    def _on_timer(self, timer: Timer, now: datetime) -> None:
        if timer.kind == "schedule":
            self._topics.add("dags")
            return
        active = self.runs.get(timer.run_id)
        if active is None:
            return
        ti = active.graph.instance(timer.ti_key) if self._has(active, timer.ti_key) else None
        if ti is None or ti.try_number != timer.try_number:
            return
        if timer.kind == "retry":
            active.graph.retry_due(timer.ti_key)
            self._collect(active)
        elif timer.kind == "queued":
            if ti.state is TaskState.QUEUED:
                self._check_queued(active, ti, now)
        elif ti.state.in_flight:
            timeout = active.version.spec.task(timer.ti_key[0]).timeout
            reason = f"TaskTimeoutError: task timed out after {timeout:g} s and did not stop; its worker was killed"
            self.executor.kill((timer.run_id, *timer.ti_key), reason)

    def _check_queued(self, active: ActiveRun, ti: TaskInstance, now: datetime) -> None:
        """Take an attempt's request as lost if it should have reached a worker for
        `queued_timeout` and did not start (a request waiting for a busy or absent worker is not
        lost); otherwise look again later. Lost ones are queued again at the end of the step."""
        ref = (active.run_id, *ti.key)
        if self.executor.undelivered_for(ref) < self._queued_timeout.total_seconds():
            self._recheck_queued(active, ti, now)
            return
        self._lost[ref] = (active, ti)

    def _recheck_queued(self, active: ActiveRun, ti: TaskInstance, now: datetime) -> None:
        self.timers.add(
            now + self._queued_timeout / QUEUED_RECHECKS, "queued", active.run_id, ti.key, ti.try_number
        )

    def _queue_lost_again(self, now: datetime) -> None:
        """Queue again the attempts whose requests were lost, once their earlier requests are
        withdrawn (all in one call), so that those cannot run too."""
        if not self._lost:
            return
        lost, self._lost = self._lost, {}
        attempts = [QueuedAttempt(ref, ti.try_number, ti.queued_at) for ref, (_, ti) in lost.items()]
        if not self.executor.withdraw(attempts):
            for active, ti in lost.values():
                self._recheck_queued(active, ti, now)
            return
        timeout = self._queued_timeout.total_seconds()
        for ref, (active, ti) in lost.items():
            log.warning(
                "task %s of run %s did not start %.0f s after its worker should have received it; queueing it again",
                ti.key,
                active.run_id,
                timeout,
            )
            self._release(ref, active)
            self._withdrawn.add(ref)
            active.graph.requeue(ti.key)
            self._collect(active)

    def _release_inherited(self, now: datetime) -> None:
        """Queue the held-back attempts whose queues have shown, for `queued_timeout`, that every
        request sent before the takeover reached a worker: those never reported were never sent
        (or are lost). Their first requests are withdrawn first, all in one call."""
        if not self._held_inherited or now < self._next_inherited_check:
            return
        self._next_inherited_check = now + min(INHERITED_CHECK, self._queued_timeout / QUEUED_RECHECKS)
        timeout = self._queued_timeout.total_seconds()
        due = {
            ref: held
            for ref, held in self._held_inherited.items()
            if self.executor.barrier_due_for(held[1]) >= timeout
        }
        if not due:
            return
        if not self.executor.withdraw(
            [QueuedAttempt(ref, r.try_number, None) for ref, (_, r) in due.items()]
        ):
            return
        log.info(
            "queueing %d task(s) of runs taken over that their previous scheduler did not send", len(due)
        )
        for ref, (active, _) in due.items():
            del self._held_inherited[ref]  # held only for runs in memory: `_forget` drops the others
            key = (ref[1], ref[2])
            assert active.inherited is not None
            if not self._has(active, key):  # a clear shrank its mapping meanwhile
                continue
            active.inherited.settle(key)
            self._withdrawn.add(ref)
            self._push(active, key)

    def _release(self, ref: TIRef, active: ActiveRun) -> None:
        if self.inflight.pop(ref, None) is not None:
            self.limits.release(active.tenant, active.dag_id, active.version.spec.task(ref[1]))
            self.ready.unpark(active.tenant)

    # -- polling the DB ------------------------------------------------------------------------

    def _poll_db_safely(self, now: datetime) -> None:
        """Poll; if the DB is unreachable, keep running what is in memory and try again shortly."""
        topics = set(self._topics)
        try:
            self._poll_db(now)
        except DBAPIError as exc:
            log.warning("metadata DB unreachable while polling (%s); retrying in 1 s", exc.__class__.__name__)
            self._topics |= topics
            self._db_retry_at = now + DB_RETRY_DELAY

    def _poll_db(self, now: datetime) -> None:
        """Look at what the wake-up topics name (everything on the safety-net poll)."""
        topics, self._topics = self._topics, set()
        if now >= self._next_poll:
            topics = set(TOPICS)
            if self.listener is not None:
                self.listener.check()
            self._next_poll = now + timedelta(seconds=self.settings.safety_poll_interval)
        next_fire = None
        with write_txn(self.engine) as conn:
            if "dags" in topics:
                _, next_fire = fire_due(conn, now)
                topics.add("runs")
            if "secrets" in topics:
                self.secrets.refresh(conn)
            if "pools" in topics:
                self.limits.set_pools(pool_sizes(conn))
            if "tenants" in topics:
                self.limits.quotas = quotas.quotas(conn)
                self.ready.unpark_all()
                topics |= {"runs", "commands"}
            if "runs" in topics and self._reaching:
                self._adopt_queued(conn, now)
            if now >= self._next_orphan_check:
                if self._reaching:
                    self._adopt_orphans(conn, now)
                self._next_orphan_check = now + self._lease / 3
            if "commands" in topics:
                self._apply_commands(conn, now)
        if next_fire is not None and next_fire != self._schedule_timer:
            self._schedule_timer = next_fire
            self.timers.add(next_fire, "schedule")

    def _adopt_queued(self, conn: Connection, now: datetime) -> None:
        """Claim queued runs within their DAG's max_active_runs and their tenant's quota, of DAGs and
        bounded tenants that no other scheduler serves now."""
        queued = runs_in_state(conn, RunState.QUEUED, set(self.runs), skip=self.limits.full_for_runs())
        elsewhere = self._served_elsewhere(conn, {tenant_of(dag_id) for _, dag_id, _ in queued})
        dags_elsewhere = leases.dags_held_elsewhere(conn, {d for _, d, _ in queued}, self.component_id)
        counts: Counter[Hashable] = Counter(a.dag_id for a in self.runs.values())
        counts.update({("tenant", t): n for t, n in self.limits.runs_by_tenant.items()})
        limits: dict[Hashable, int | None] = {("tenant", t): n for t, n in self.limits.run_limits().items()}
        candidates: list[tuple[str, tuple[Hashable, ...]]] = []
        for run_id, dag_id, version in queued:
            limits[dag_id] = self._max_active_runs(conn, run_id, dag_id, version)
            if (
                limits[dag_id] is not None
                and tenant_of(dag_id) not in elsewhere
                and dag_id not in dags_elsewhere
            ):
                candidates.append((run_id, (dag_id, ("tenant", tenant_of(dag_id)))))
        admitted = admit(candidates, counts, limits)
        taken = leases.claim(conn, admitted, self.component_id, self._lease_until(now), now)
        self._adopt(conn, [run_id for run_id in admitted if run_id in taken], now)

    def _served_elsewhere(self, conn: Connection, tenant_ids: set[str]) -> set[str]:
        """Tenants with a quota or pools that another scheduler serves now (ADR 0009: one at a time)."""
        bounded = [t for t in tenant_ids if self.limits.bounded(t)]
        return quotas.held_elsewhere(conn, bounded, self.component_id)

    def _max_active_runs(self, conn: Connection, run_id: str, dag_id: str, version: int) -> int | None:
        try:
            return self.versions.get(conn, dag_id, version).spec.max_active_runs
        except NotFoundError:
            log.exception("run %s cannot start", run_id)
            return None

    def _adopt_orphans(self, conn: Connection, now: datetime) -> None:
        """Take over active runs whose scheduler stopped renewing their leases. Runs whose lease this
        scheduler let run out (it stalled) stay as they are in memory: its next batch renews them."""
        owners = {owner for _, owner in leases.orphaned(conn, now) if owner not in (None, self.component_id)}
        registered = components.registered(conn, owners)
        taken: list[ActiveRun] = []
        unclean: set[str] = set()
        for owner in owners:
            run_ids = leases.claim_all_from(conn, owner, self.component_id, self._lease_until(now))
            if run_ids:
                log.warning(
                    "taking over %d run(s) from scheduler %s, whose lease ran out", len(run_ids), owner
                )
            taken.extend(self._adopt(conn, run_ids, now, previous_owner=owner))
            if owner in registered:
                unclean.update(run_ids)
        self._resume_all(taken, now, unclean)

    def _note_reach(self) -> None:
        """Whether the executor reaches its workers. A scheduler cut off from them (a broker it
        cannot reach while others can) stops renewing its runs' leases and takes no run, so another
        scheduler takes those runs over once the leases run out and finishes them; one that gets
        through again renews at once, and learns at its next batch which runs it lost."""
        reaching = self.executor.reaches_workers()
        if reaching == self._reaching:
            return
        self._reaching = reaching
        if reaching:
            log.info(
                "the executor reaches its workers again; renewing the leases of %d run(s)", len(self.runs)
            )
            self._next_renewal = self.clock()
        else:
            log.warning(
                "the executor cannot reach its workers; the leases of this scheduler's %d run(s) will run "
                "out so that another scheduler finishes them, and it takes no run until it reaches them",
                len(self.runs),
            )

    def _follow(self, scheduler_id: str) -> None:
        if scheduler_id not in self._followed:
            self._followed.add(scheduler_id)
            self._followed_records.extend(self.executor.follow(scheduler_id))

    def _resume_all(self, taken: list[ActiveRun], now: datetime, unclean: Collection[str]) -> None:
        """Store what dead schedulers' workers recorded, then deal with what is still in flight.
        `unclean`: runs whose scheduler did not stop cleanly, so it may have sent requests it never
        stored; with a remote executor, their next attempts wait to be accounted for (`Inherited`)."""
        records, self._followed_records = self._followed_records, []
        restore_outcomes({a.run_id: a for a in taken}, records, now)
        for active in taken:
            self._resume_in_flight(active, now)
        inheriting = [a for a in taken if a.run_id in unclean]
        if inheriting and self.executor.commit_before_dispatch:
            self.executor.takeover_barrier()
            for active in inheriting:
                active.inherited = Inherited({ti.key: ti.try_number for ti in active.graph.instances()})

    def _resume_in_flight(self, active: ActiveRun, now: datetime) -> None:
        """Attempts in flight under a dead scheduler: wait for them if they survive it, else re-queue."""
        for ti in list(active.graph.instances()):
            if not ti.state.in_flight:
                continue
            if not self.executor.in_flight_survives_scheduler:
                active.graph.requeue(ti.key)
                continue
            self.inflight[(active.run_id, ti.task_id, ti.map_index)] = active
            self.limits.take(active.tenant, active.dag_id, active.version.spec.task(ti.task_id))
            if ti.state is TaskState.QUEUED:
                self._track_adopted_attempt(active, ti)
                self.timers.add(now + self._queued_timeout, "queued", active.run_id, ti.key, ti.try_number)
        self._collect(active)

    def _track_adopted_attempt(self, active: ActiveRun, ti: TaskInstance) -> None:
        """Tell the executor of a queued attempt the dead scheduler may have published, so that it
        is queued again only on evidence that its message was lost (`Executor.adopt`)."""
        secrets = self.secrets.of(active.tenant)
        if secrets is not None:
            self.executor.adopt([self._request(active, ti.key, ti.try_number, secrets)])

    def _request(
        self, active: ActiveRun, key: TIKey, try_number: int, secrets: Mapping[str, str]
    ) -> TaskRequest:
        return build_request(
            active.graph,
            key,
            try_number,
            active.version,
            active.info,
            self.settings.resolved_log_url,
            secrets,
            self.api,
        )

    def _adopt(
        self, conn: Connection, run_ids: Sequence[str], now: datetime, previous_owner: str | None = None
    ) -> list[ActiveRun]:
        """Hold these claimed runs in memory, loaded together (two queries however many runs)."""
        if previous_owner:
            self._follow(previous_owner)
        return [self._hold(conn, row, instances, now) for row, instances in load_runs(conn, run_ids)]

    def _hold(self, conn: Connection, row: RunRow, instances: list[TaskInstance], now: datetime) -> ActiveRun:
        """One loaded run as this scheduler's active run: started if it was queued, ready tasks found."""
        version = self.versions.get(conn, row.dag_id, row.version)
        graph = RunGraph(row.run_id, version.spec, row.params, instances)
        active = ActiveRun(
            graph, version, RunInfo(row.key, row.logical_date), next(self._seq), row.started_at
        )
        if row.state is not RunState.RUNNING:
            active.started_at = now
            graph.changes.run_changed = True
        if row.run_id not in self.runs:
            self.limits.runs_by_tenant[active.tenant] += 1
        self.runs[row.run_id] = active
        graph.start(now)
        self._collect(active)
        return active

    def _apply_commands(self, conn: Connection, now: datetime) -> None:
        """Apply users' commands; each is marked done in the batch that stores its effects."""
        self._commands_wait = False
        for command in pending_commands(conn):
            if command.id in self._applying:
                continue
            active = self.runs.get(command.run_id)
            if active is None:
                if not self._may_take(conn, command.run_id):
                    self._commands_wait = True
                    continue
                if not leases.claim(conn, [command.run_id], self.component_id, self._lease_until(now), now):
                    continue
                active = next(iter(self._adopt(conn, [command.run_id], now)), None)
            if active is not None and command.kind == "clear":
                task_id = command.payload.get("task_id")
                active.graph.clear(
                    [task_id] if task_id else None, bool(command.payload.get("downstream")), now
                )
                self._collect(active)
            elif active is not None and command.kind == "cancel":
                reason = str(command.payload.get("reason", "cancelled"))
                self._kill(active, active.graph.cancel(reason, now), reason)
            elif active is not None and command.kind == "mark":
                mark = command.payload
                note = str(mark["note"])
                marked = active.graph.mark(
                    str(mark["task_id"]), mark.get("map_index"), TaskState(mark["state"]), note, now
                )
                self._kill(active, marked, note)
            self._applied.append((command.id, command.run_id))
            self._applying[command.id] = command.run_id
            if self._dirty_since is None:
                self._dirty_since = self.clock()

    def _kill(self, active: ActiveRun, keys: list[TIKey], reason: str) -> None:
        """Kill attempts a user ended (cancel, mark); their late reports are ignored."""
        for key in keys:
            ref = (active.run_id, *key)
            self._release(ref, active)
            self.executor.kill(ref, reason)
        self._collect(active)

    def _may_take(self, conn: Connection, run_id: str) -> bool:
        """Whether this scheduler may make a run active again (a clear): no other scheduler serves its
        DAG, nor its tenant if a quota or pools bound it, and the DAG's max_active_runs and the
        tenant's quota have room."""
        found = dag_of(conn, run_id)
        if found is None:
            return True
        dag_id, version = found
        if leases.dags_held_elsewhere(conn, [dag_id], self.component_id, skip_locked=True):
            return False
        limit = self._max_active_runs(conn, run_id, dag_id, version)
        if limit is not None and sum(a.dag_id == dag_id for a in self.runs.values()) >= limit:
            return False
        tenant = tenant_of(dag_id)
        if not self.limits.bounded(tenant):
            return True
        if tenant in self.limits.full_for_runs():
            return False
        return not quotas.held_elsewhere(conn, [tenant], self.component_id, skip_locked=True)

    # -- dispatch and persistence --------------------------------------------------------------

    def _dispatch(self, now: datetime) -> None:
        blocked: list[tuple[ActiveRun, TIKey]] = []
        while self.executor.free_slots() - len(self._outbox) - self.writer.pending_requests > 0:
            item = self.ready.pop()
            if item is None:
                break
            active = self.runs.get(item[0])
            if active is None or not self._has(active, item[1]):
                continue
            if active.graph.instance(item[1]).state.value != "scheduled":
                continue
            if not self._dispatch_one(active, item[1], now):
                blocked.append((active, item[1]))
        for active, key in blocked:
            self._push(active, key)

    def _dispatch_one(self, active: ActiveRun, key: TIKey, now: datetime) -> bool:
        spec = active.version.spec.task(key[0])
        why = self.limits.blocker(active.tenant, active.dag_id, active.version.spec.max_active_tasks, spec)
        if why == UNKNOWN_POOL:
            pool = f"pool '{spec.pool}' of tenant '{active.tenant}'"
            active.graph.fail(key, f"{pool} does not exist; create it or remove `pool=`", now)
            self._collect(active)
            return True
        if why == TENANT_QUOTA:
            self.ready.park(active.tenant)
        if why is not None:
            return False
        secrets = self.secrets.of(active.tenant)
        if secrets is None:
            return False
        next_try = active.graph.instance(key).try_number + 1
        if active.inherited is not None and active.inherited.covers(key, next_try):
            ref = (active.run_id, *key)
            self._held_inherited[ref] = (active, self._request(active, key, next_try, secrets))
            return True
        request = self._request(active, key, active.graph.mark_queued(key, now), secrets)
        if self._send_before_commit(active, request.ti_key, now):
            self.executor.submit([request])
        else:
            self._outbox.append(request)
        if self.executor.in_flight_survives_scheduler:
            self.timers.add(now + self._queued_timeout, "queued", active.run_id, key, request.try_number)
        self.limits.take(active.tenant, active.dag_id, spec)
        self.inflight[request.ti_key] = active
        self._mark_dirty(active)
        if spec.timeout:
            self.timers.add(
                now + timedelta(seconds=spec.timeout) + DEADLINE_GRACE,
                "deadline",
                active.run_id,
                key,
                request.try_number,
            )
        return True

    def _send_before_commit(self, active: ActiveRun, ref: TIRef, now: datetime) -> bool:
        """Whether a request may go before its queued state is stored: always for an executor whose
        workers journal their outcomes, else as `sends_before_commit` decides (ADR 0005)."""
        if not self.executor.commit_before_dispatch:
            return True
        withdrawn = ref in self._withdrawn
        self._withdrawn.discard(ref)
        commands_unstored = active.run_id in self._applying.values()
        return sends_before_commit(now, active.fresh_until, commands_unstored, withdrawn)

    def _flush(self, now: datetime, force: bool = False, wait: float | None = None) -> None:
        """Hand the gathered changes to the writer (one batch in flight): at once when something waits
        for their commit (work to dispatch, applied commands, a run that started or ended), else once
        they are `scheduler_write_window` old, so that outcomes nobody waits for share a transaction.

        A batch renews the leases of the runs it writes, which fences those writes (ADR 0005); the
        leases of every run held are renewed with the heartbeat, and at least every third of the
        lease, by a batch of its own if nothing else is due (the gathered changes keep waiting),
        but not while the executor cannot reach the workers (`_note_reach`). `force`: write now and
        wait for the commit, at most `wait` seconds if given."""
        heartbeat = now >= self._next_heartbeat
        renew_all = (heartbeat or now >= self._next_renewal) and self._reaching
        due = self._dirty_since is not None and (
            force or self._urgent() or now - self._dirty_since >= self._write_window
        )
        if (not due and not renew_all and not heartbeat) or (self.writer.busy and not force):
            return
        if not due and not heartbeat:  # only the leases: the gathered changes keep waiting
            if self.runs:
                lease = Lease(self.component_id, list(self.runs), self._lease_until(now))
                self.writer.submit(Batch(collect([]), self.executor.epoch, lease=lease))
            self._next_renewal = now + self._lease / 3
            return
        batch = [self.runs[r] for r in self._dirty if r in self.runs]
        rows = collect((a.graph, self._started(a)) for a in batch)
        finished = [a.run_id for a in batch if a.graph.state.finished]
        extra = self._heartbeat_writer(now) if heartbeat else None
        requests, self._outbox = self._outbox, []
        commands, self._applied = self._applied, []
        fenced = list(self.runs) if renew_all else self._fenced(batch, commands)
        lease = Lease(self.component_id, fenced, self._lease_until(now))
        self.writer.submit(Batch(rows, self.executor.epoch, finished, extra, lease, requests, commands))
        self._dirty.clear()
        self._dirty_since = None
        if heartbeat:
            self._next_heartbeat = now + timedelta(seconds=self.settings.heartbeat_interval)
        if renew_all:
            self._next_renewal = now + self._lease / 3
        if force:
            self._on_committed(self.writer.wait_idle(wait))

    def _fenced(self, batch: list[ActiveRun], commands: list[tuple[int, str]]) -> list[str]:
        """The held runs whose leases a batch must renew: those it writes rows or commands for."""
        return list(dict.fromkeys([*(a.run_id for a in batch), *(r for _, r in commands if r in self.runs)]))

    def _urgent(self) -> bool:
        return bool(self._outbox or self._applied) or any(
            self.runs[r].graph.changes.run_changed for r in self._dirty if r in self.runs
        )

    def _on_committed(self, batches: list[Batch]) -> None:
        """Stored for good: workers may drop journal records, finished runs leave memory."""
        for batch in batches:
            self.executor.checkpoint(batch.epoch)
            self._note_renewed(batch)
            for command_id, _ in batch.commands:
                self._applying.pop(command_id, None)
            for run_id in batch.lost_runs:
                self._drop_lost(run_id)
            self.executor.submit([r for r in batch.requests if self._still_queued(r)])
            for run_id in batch.finished_runs:
                active = self.runs.get(run_id)
                if active is not None and active.graph.state.finished and run_id not in self._dirty:
                    self._forget(active)
                    self._topics |= {"runs", "commands"} if self._commands_wait else {"runs"}

    def _note_renewed(self, batch: Batch) -> None:
        """The leases a committed batch renewed are fresh for half a lease from its submission."""
        if batch.lease is None:
            return
        fresh_until = batch.lease.until - self._lease / 2
        for run_id in batch.lease.run_ids:
            if run_id in batch.lost_runs:
                continue
            active = self.runs.get(run_id)
            if active is not None:
                active.fresh_until = fresh_until

    def _still_queued(self, request: TaskRequest) -> bool:
        """Whether a request whose queued state is now stored is still to be sent (the task may have moved on)."""
        active = self.runs.get(request.run_id)
        key = (request.task_id, request.map_index)
        if active is None or not self._has(active, key):
            return False
        ti = active.graph.instance(key)
        return ti.state is TaskState.QUEUED and ti.try_number == request.try_number

    def _drop_lost(self, run_id: str) -> None:
        """Another scheduler took this run (our lease ran out): stop working on it."""
        active = self.runs.get(run_id)
        if active is None:
            return
        log.error("lost the lease of run %s to another scheduler; dropping it", run_id)
        self._forget(active)
        for ref in [r for r, a in self.inflight.items() if a is active]:
            self._release(ref, active)

    def _forget(self, active: ActiveRun) -> None:
        """The run leaves memory (it ended, or another scheduler took it)."""
        del self.runs[active.run_id]
        self.ready.discard_run(active.run_id)
        for ref in [ref for ref, (a, _) in self._held_inherited.items() if a is active]:
            del self._held_inherited[ref]
        for ref in [ref for ref in self._early_reports if ref[0] == active.run_id]:
            del self._early_reports[ref]
        self._withdrawn -= {ref for ref in self._withdrawn if ref[0] == active.run_id}
        self.limits.runs_by_tenant[active.tenant] -= 1

    def _lease_until(self, now: datetime) -> datetime:
        return now + self._lease

    def _heartbeat_writer(self, now: datetime) -> Callable[[Connection], None]:
        take = getattr(self.executor, "take_worker_heartbeats", None)
        waiting = getattr(self.executor, "waiting_tasks", None)
        forget_before = None
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_INTERVAL
            forget_before = now - timedelta(seconds=self.settings.gone_retention)
        return heartbeat_write(
            self.clock,
            self.component_id,
            now,
            take() if take is not None else [],
            forget_before,
            waiting() if waiting is not None else None,
        )

    def _started(self, active: ActiveRun) -> datetime | None:
        if active.start_recorded:
            return None
        active.start_recorded = True
        return active.started_at

    # -- helpers -------------------------------------------------------------------------------

    def _collect(self, active: ActiveRun) -> None:
        """Queue what the run's graph made ready, arm its retry timers, mark it for the next write."""
        changes = active.graph.changes
        scheduled, retries = changes.scheduled, changes.retries
        changes.scheduled, changes.retries = [], []
        for key in scheduled:
            self._push(active, key)
        for key in retries:
            ti = active.graph.instance(key)
            assert ti.next_try_at is not None
            self.timers.add(ti.next_try_at, "retry", active.run_id, key, ti.try_number)
        self._mark_dirty(active)
        if self._early_reports:
            self._apply_early_reports(active, [*scheduled, *retries])

    def _apply_early_reports(self, active: ActiveRun, keys: list[TIKey]) -> None:
        """Apply the reports kept for these instances, which were not ready when their reports came."""
        now = self.clock()
        for key in keys:
            for message in self._early_reports.pop((active.run_id, *key), []):
                self._on_message(message, now)

    def _mark_dirty(self, active: ActiveRun) -> None:
        self._dirty.add(active.run_id)
        if self._dirty_since is None:
            self._dirty_since = self.clock()

    def _push(self, active: ActiveRun, key: TIKey) -> None:
        spec = active.version.spec
        task = spec.task(key[0])
        self.ready.push(active.run_id, key, task.priority, active.seq, spec.topo_index[key[0]], active.tenant)

    @staticmethod
    def _has(active: ActiveRun, key: TIKey) -> bool:
        try:
            active.graph.instance(key)
        except KeyError:
            return False
        return True

    def _timeout(self, max_wait: float) -> float:
        now = self.clock()
        deadlines = [self._next_poll, self._next_heartbeat, self._next_orphan_check, self._next_renewal]
        if self._held_inherited:
            deadlines.append(self._next_inherited_check)
        if self._dirty_since is not None and not self.writer.busy:
            deadlines.append(self._dirty_since + self._write_window)
        if (due := self.timers.next_due()) is not None:
            deadlines.append(due)
        if self._topics and self.clock() >= self._db_retry_at:
            return 0.0
        return max(0.0, min(max_wait, *((d - now).total_seconds() for d in deadlines)))

    def _unregister(self) -> None:
        """Release this scheduler's leases, so that another takes its runs over at once, and leave."""
        try:
            with write_txn(self.engine) as conn:
                leases.release(conn, self.component_id, self.clock())
                components.unregister(conn, self.component_id)
        except DBAPIError as exc:
            log.warning(
                "could not release this scheduler's leases (%s): another scheduler takes its runs over once "
                "they run out (ZONDA_SCHEDULER_LEASE_SECONDS)",
                type(exc).__name__,
            )

    def _register(self) -> None:
        with write_txn(self.engine) as conn:
            self.clock.sync(conn)
            now = self.clock()
            components.register(
                conn,
                components.Component(
                    self.component_id, "scheduler", socket.gethostname(), os.getpid(), now, now
                ),
            )
