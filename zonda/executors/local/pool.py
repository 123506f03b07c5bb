"""`LocalExecutor`: up to N long-lived worker processes fed over pipes; crashed workers are replaced.

Each worker serves one tenant: it is started fresh, takes the tenant of its first request (and that
tenant's OS user, see `tenancy.py`) and never runs another tenant's task. When every worker is taken,
an idle worker of another tenant (the least recently used) is retired and a fresh one started: a fork
of a fork server that has Zonda's worker modules imported already.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from zonda.core.ids import tenant_of
from zonda.errors import ConfigError
from zonda.executors.base import QueuedAttempt, TIRef
from zonda.executors.forkserver import preload
from zonda.executors.local.journal import read_journal
from zonda.executors.local.tenancy import TenantUsers
from zonda.executors.local.worker_main import Envelope, WorkerConfig, worker_main
from zonda.worker.protocol import TaskFinished, TaskRequest, WorkerMessage

log = logging.getLogger(__name__)
_ctx = multiprocessing.get_context("forkserver")
PRELOAD = preload("zonda.executors.local.worker_main")
"""Imported once by the fork server, so a new worker is a fork (~6 ms), not a Python start (~200 ms):
a tenant taking a worker back after another tenant's burst does not wait for one. No tenant code
is imported there; workers import DAG modules themselves, after taking their tenant's identity.
See `zonda.executors.forkserver`."""

STOP_GRACE = 2.0
"""Seconds the busy workers get, together, to finish their tasks when the scheduler stops."""


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    config: WorkerConfig
    request: TaskRequest | None = None
    outcome_epoch: int = -1
    kill_reason: str | None = None
    messages: list[WorkerMessage] = field(default_factory=list)
    tenant: str | None = None
    """The tenant this worker serves; None until its first request."""
    used: int = 0


class LocalExecutor:
    """Runs each request in one of at most `size` worker processes on this machine, one tenant each."""

    commit_before_dispatch = False
    in_flight_survives_scheduler = False

    def __init__(
        self,
        size: int,
        artifact_url: str,
        inline_max_bytes: int,
        journal_root: Path,
        owner: str = "scheduler",
        nice: int = 0,
        tenants: TenantUsers | None = None,
    ) -> None:
        self.journal_root = journal_root
        journal_dir = journal_root / owner
        self.size = size
        self.nice = nice
        self.artifact_url = artifact_url
        self.inline_max_bytes = inline_max_bytes
        self.journal_dir = journal_dir
        self.tenants = tenants or TenantUsers(journal_root, ())
        self._workers: list[_Worker] = []
        self._retiring: list[BaseProcess] = []
        self._refused: list[WorkerMessage] = []
        self._idle: list[_Worker] = []
        self._by_ti: dict[TIRef, _Worker] = {}
        self._old_journals: list[tuple[Path, int]] = []
        self._seq = 0
        self._epoch = 0

    def start(self) -> None:
        _ctx.set_forkserver_preload(PRELOAD)
        self.tenants.prepare()
        self.journal_dir.mkdir(parents=True, exist_ok=True)
        self._workers = [self._spawn() for _ in range(self.size)]
        self._idle = list(self._workers)

    def reaches_workers(self) -> bool:
        """Always: the workers are this scheduler's own processes."""
        return True

    def free_slots(self) -> int:
        return self.size - len(self._workers) + len(self._idle)

    def submit(self, requests: Sequence[TaskRequest]) -> None:
        for request in requests:
            self._start(request)

    def _start(self, request: TaskRequest) -> None:
        tenant = tenant_of(request.dag_id)
        try:
            identity = self.tenants.identity(tenant)
        except ConfigError as exc:
            self._refused.append(self._refusal(request, str(exc)))
            return
        worker = self._worker_for(tenant)
        self._seq += 1
        worker.tenant, worker.used, worker.request = tenant, self._seq, request
        self._by_ti[request.ti_key] = worker
        worker.conn.send(Envelope(request, worker.outcome_epoch < 0, identity))

    def waitables(self) -> Sequence[Any]:
        return [w.conn for w in self._workers]

    @property
    def epoch(self) -> int:
        return self._epoch

    def poll(self) -> list[WorkerMessage]:
        self._epoch += 1
        out, self._refused = self._refused, []
        for worker in list(self._workers):
            out.extend(self._drain(worker))
        self._retiring = [process for process in self._retiring if process.is_alive()]
        return out

    def kill(self, ti: TIRef, reason: str) -> None:
        worker = self._by_ti.get(ti)
        if worker is not None and worker.process.pid is not None:
            worker.kill_reason = reason
            worker.process.kill()

    def adopt(self, requests: Sequence[TaskRequest]) -> None:
        """Never asked: a dead scheduler's local workers died with it."""

    def undelivered_for(self, ti: TIRef) -> float:
        """Never asked (tasks die with the scheduler): a request on a pipe is never lost."""
        return 0.0

    def takeover_barrier(self) -> None:
        """Never asked: a dead scheduler's local workers died with it, and their journals say what ran."""

    def barrier_due_for(self, request: TaskRequest) -> float:
        """Never asked (`takeover_barrier` is not)."""
        return math.inf

    def withdraw(self, attempts: Sequence[QueuedAttempt]) -> bool:
        """Never asked (tasks die with the scheduler): nothing to withdraw."""
        return True

    def follow(self, scheduler_id: str) -> list[TaskFinished]:
        """The outcomes journaled by the workers of a dead scheduler that shared this machine's home."""
        paths = sorted((self.journal_root / scheduler_id).glob("*.journal"))
        self._old_journals.extend((path, self._epoch) for path in paths)
        return [record for path in paths for record in read_journal(path)]

    def checkpoint(self, epoch: int) -> None:
        for path, seen in list(self._old_journals):
            if seen <= epoch:
                path.unlink(missing_ok=True)
                self._old_journals.remove((path, seen))
        for worker in self._workers:
            if 0 <= worker.outcome_epoch <= epoch:
                worker.outcome_epoch = -1

    def stop(self) -> None:
        """Ask every worker to exit after its task; those still busy after STOP_GRACE are killed
        (their tasks run again when the scheduler's runs resume). The grace is for all of them together.
        A journal goes only once its outcomes are stored (`checkpoint`): a scheduler that stops while the
        DB does not answer leaves them to the scheduler that takes its runs over."""
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except (BrokenPipeError, OSError):
                log.debug("worker %s already gone", worker.config.worker_id)
        deadline = time.monotonic() + STOP_GRACE
        for worker in self._workers:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            if worker.outcome_epoch < 0:
                Path(worker.config.journal_path).unlink(missing_ok=True)
        for process in self._retiring:
            process.join(timeout=2)
        self._workers, self._idle, self._retiring = [], [], []

    def _worker_for(self, tenant: str) -> _Worker:
        """An idle worker of `tenant`, else a fresh one, else one that replaces another tenant's idle worker."""
        for wanted in (tenant, None):
            for worker in reversed(self._idle):
                if worker.tenant == wanted:
                    self._idle.remove(worker)
                    return worker
        if len(self._workers) >= self.size:
            self._retire(min(self._idle, key=lambda w: w.used))
        worker = self._spawn()
        self._workers.append(worker)
        return worker

    def _retire(self, worker: _Worker) -> None:
        """Stop an idle worker; its journal is dropped once the scheduler stored its last outcome."""
        try:
            worker.conn.send(None)
        except (BrokenPipeError, OSError):
            log.debug("worker %s already gone", worker.config.worker_id)
        worker.conn.close()
        self._workers.remove(worker)
        self._idle.remove(worker)
        self._retiring.append(worker.process)
        self._old_journals.append((Path(worker.config.journal_path), self._epoch))

    def _refusal(self, request: TaskRequest, reason: str) -> TaskFinished:
        return TaskFinished.lost(
            request.run_id, request.task_id, request.map_index, request.try_number, reason
        )

    def _drain(self, worker: _Worker) -> list[WorkerMessage]:
        messages: list[WorkerMessage] = []
        try:
            while worker.conn.poll():
                messages.append(self._received(worker, worker.conn.recv()))
        except (EOFError, OSError):
            messages.extend(self._replace(worker))
        return messages

    def _received(self, worker: _Worker, message: WorkerMessage) -> WorkerMessage:
        if isinstance(message, TaskFinished) and worker.request is not None:
            self._by_ti.pop(worker.request.ti_key, None)
            worker.request = None
            worker.outcome_epoch = self._epoch
            self._idle.append(worker)
        return message

    def _replace(self, worker: _Worker) -> list[WorkerMessage]:
        """The worker died: report its task (from its journal if it got that far) and start another."""
        worker.process.join(timeout=5)
        code = worker.process.exitcode
        lost: list[WorkerMessage] = []
        if worker.request is not None:
            lost.append(self._lost_outcome(worker, code))
            self._by_ti.pop(worker.request.ti_key, None)
        self._workers.remove(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        self._old_journals.append((Path(worker.config.journal_path), self._epoch))
        replacement = self._spawn()
        self._workers.append(replacement)
        self._idle.append(replacement)
        log.warning(
            "worker %s exited with code %s; started %s",
            worker.config.worker_id,
            code,
            replacement.config.worker_id,
        )
        return lost

    def _lost_outcome(self, worker: _Worker, code: int | None) -> TaskFinished:
        request = worker.request
        assert request is not None
        for record in read_journal(Path(worker.config.journal_path)):
            if record.ti_key == request.ti_key and record.try_number == request.try_number:
                return record
        reason = worker.kill_reason or (
            f"WorkerLostError: worker process {worker.process.pid} died (exit code {code}) while running the task"
        )
        return TaskFinished.lost(
            request.run_id, request.task_id, request.map_index, request.try_number, reason
        )

    def _spawn(self) -> _Worker:
        self._seq += 1
        worker_id = f"{os.getpid()}-{self._seq}"
        config = WorkerConfig(
            worker_id,
            self.artifact_url,
            self.inline_max_bytes,
            str(self.journal_dir / f"worker-{worker_id}.journal"),
            os.getpid(),
            self.nice,
        )
        parent, child = _ctx.Pipe(duplex=True)
        process = _ctx.Process(
            target=worker_main, args=(child, config), name=f"zonda-worker-{worker_id}", daemon=True
        )
        process.start()
        child.close()
        return _Worker(process, parent, config)
