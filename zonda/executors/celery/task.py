"""The Celery task `zonda.run_task`: one attempt, or several of one queue run one after another
(`backlog.bundle`), in a slot process, each reported to its scheduler.

Slot processes are long-lived (`supervisor.py`), so each keeps what makes a task cost a function
call: its `DagLoader` (one import per DAG version), its artifact store and the installed output
capture. The attempt itself is `zonda.worker.runner.execute`, the same runner as every other
executor. Reports go to the request's `reply_to` queue on one producer the slot keeps
(`events.ReportPublisher`): `TaskStarted` once the attempt has run 20-40 ms (short tasks
send only their end, which carries the start time), `TaskFinished` at its end. Reports name the
`zonda worker` (the supervisor), whose heartbeats list the attempt, not the slot.

A request this worker cannot open (sealed for a scope whose keys it lacks, or altered on the way,
ADR 0015) is not run either: it is reported failed as `WorkerCannotOpen`, naming the fix.

Two failures never reach the task body, and are reported as `WorkerLostError` instead:
- the slot process died: its supervisor reports the attempt it was running;
- the broker delivers the message again because the slot that had it died or lost its
  connection. Running it again could run an attempt twice, so it is reported instead, and the
  scheduler's retry policy decides (the executor keeps one outcome per attempt, so this report is
  dropped when the supervisor's came first).

In a message of several, each attempt answers to revokes of its own task id: one withdrawn or
killed before its turn is skipped, a running one is terminated with its slot (`terminable_as`).
The attempts behind the one a dead slot ran never started: RabbitMQ delivers the message again at
once, and they are reported as above; on Redis it stays unacknowledged, and the executor queues
them again once it takes them as lost (ADR 0013).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from celery.worker import state as worker_state

from zonda.artifacts.store import ArtifactStore
from zonda.executors.celery.app import TASK_NAME
from zonda.executors.celery.codec import Unopened, decode_task_message
from zonda.executors.celery.events import ReportPublisher, lost_report, running_task
from zonda.executors.celery.gate import ConsumptionGate
from zonda.executors.celery.logs import attempt_log
from zonda.executors.celery.sealing import WorkerKeys
from zonda.executors.celery.slots import SlotReporter, SlotTask
from zonda.executors.local.started import StartedReporter
from zonda.executors.local.worker_main import STARTED_DELAY
from zonda.worker.loader import DagLoader
from zonda.worker.logs import capture_installed
from zonda.worker.protocol import TaskRequest, TaskStarted, WorkerMessage
from zonda.worker.runner import execute

if TYPE_CHECKING:
    from celery import Celery, Task

    from zonda.settings import Settings

log = logging.getLogger(__name__)

REDELIVERED = (
    "WorkerLostError: the worker that received this task died or lost its broker connection before "
    "reporting an outcome; it is not run twice (the task's retries apply)"
)


class SlotRuntime:
    """What one slot process keeps across tasks; `init()` runs once, when the slot starts."""

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._loader: DagLoader | None = None
        self._store: ArtifactStore | None = None
        self._capture = ExitStack()
        self._reporter_: StartedReporter | None = None
        self.keys = WorkerKeys(settings.worker_keys)
        self._reports = ReportPublisher(app, self.keys)

    @property
    def _reporter(self) -> StartedReporter:
        if self._reporter_ is None:
            self._reporter_ = StartedReporter(STARTED_DELAY)
        return self._reporter_

    def init(self) -> None:
        """Install output capture, build the loader and the store (idempotent)."""
        if self._loader is not None:
            return
        self._capture.enter_context(capture_installed())
        self._loader = DagLoader()
        self._store = ArtifactStore(self.settings.resolved_artifact_url, self.settings.inline_output_bytes)

    def run(self, request: TaskRequest, worker: str) -> None:
        """Execute the attempt and report its start and its outcome."""
        self.init()
        assert self._loader is not None and self._store is not None

        def started(message: TaskStarted) -> None:
            self._reporter.started(lambda: self.report(request.reply_to, replace(message, worker=worker)))

        with attempt_log(request.log_path) as local_log:
            outcome = execute(replace(request, log_path=local_log), self._loader, self._store, started)
        self._reporter.finished()
        self.report(request.reply_to, replace(outcome, worker=worker))

    def report(self, reply_to: str, message: WorkerMessage) -> None:
        if not reply_to:
            log.error("request %s has no reply_to; its report is dropped", message.run_id)
            return
        self._reports.publish(reply_to, message)


def register_task(
    app: Celery,
    runtime: SlotRuntime,
    worker_id: str,
    slot: SlotReporter,
    gate: ConsumptionGate,
    tenant: str | None = None,
) -> Task:
    """Define `zonda.run_task` on `app` (workers only; the executor publishes it by name).

    `slot` tells the supervisor which attempt runs; `gate` learns when the slot's message begins
    and ends (before Celery acknowledges it). A worker started for one tenant
    (`zonda worker --tenant T`) refuses any other tenant's task: a misrouted message must not run
    tenant code in another tenant's worker.
    """

    @app.task(name=TASK_NAME, bind=True, ignore_result=True)  # type: ignore[untyped-decorator]
    def run_task(task: Task, payload: Any) -> None:
        message_id = str(task.request.id)
        redelivered = bool((task.request.delivery_info or {}).get("redelivered"))
        gate.task_started(message_id)
        try:
            for task_id, request in decode_task_message(message_id, payload, runtime.keys):
                with terminable_as(task_id, message_id):
                    if task_id != message_id and task_id in worker_state.revoked:
                        continue  # withdrawn or killed before it started (Celery checks a message's own id)
                    if isinstance(request, Unopened):
                        not_run(request)
                    else:
                        run_one(task_id, request, redelivered)
        finally:
            gate.task_ended(message_id)

    def not_run(request: Unopened) -> None:
        """Report an attempt whose request this worker cannot open (another scope's key, or altered)."""
        error = f"WorkerCannotOpen: worker {worker_id} did not run this task: {request.error}"
        log.error("did not run %s/%s: %s", request.dag_id, request.task_id, error)
        runtime.report(request.reply_to, lost_report(running_task(request), error, worker_id))

    def run_one(task_id: str, request: TaskRequest, redelivered: bool) -> None:
        attempt = running_task(request)
        if redelivered:
            runtime.report(request.reply_to, lost_report(attempt, REDELIVERED, worker_id))
            return
        owner = request.tenant
        if tenant is not None and owner != tenant:
            refused = (
                f"WorkerRefused: worker {worker_id} serves tenant {tenant} only and did not run this task of "
                f"{f'tenant {owner}' if owner else 'no tenant'}; check ZONDA_TENANT_QUEUES on the schedulers "
                "and the queues this worker consumes"
            )
            log.error("refused %s/%s: %s", request.dag_id, request.task_id, refused)
            runtime.report(request.reply_to, lost_report(attempt, refused, worker_id))
            return
        slot.started(SlotTask(task_id, attempt))
        try:
            runtime.run(request, worker_id)
        finally:
            slot.ended()

    return run_task


@contextmanager
def terminable_as(task_id: str, message_id: str) -> Iterator[None]:
    """While it runs, an attempt carried in a message of several answers to a revoke with
    `terminate` of its own task id: Celery looks the running request up by id, so the attempt's id
    names the message's request meanwhile (and terminating it ends the slot, `slot.py`)."""
    request = worker_state.requests.get(message_id) if task_id != message_id else None
    if request is None:
        yield
        return
    worker_state.requests[task_id] = request
    try:
        yield
    finally:
        worker_state.requests.pop(task_id, None)
