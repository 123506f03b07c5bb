"""The body of a local worker process: receive requests on a pipe, run them, answer on the pipe."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from zonda.artifacts.store import ArtifactStore
from zonda.executors.local.journal import Journal
from zonda.executors.local.started import StartedReporter
from zonda.executors.local.tenancy import TenantIdentity, become, scrub_environment
from zonda.worker.loader import DagLoader
from zonda.worker.logs import capture_installed
from zonda.worker.protocol import TaskFinished, TaskRequest
from zonda.worker.runner import execute

PR_SET_PDEATHSIG = 1
STARTED_DELAY = 0.02
"""Tasks shorter than this report only their end (with its start time) to the scheduler."""


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker process needs besides its pipe (no DB credentials, by design)."""

    worker_id: str
    artifact_url: str
    inline_max_bytes: int
    journal_path: str
    parent_pid: int
    nice: int = 0


@dataclass(frozen=True)
class Envelope:
    """A request, the identity of its tenant, and a note that every earlier outcome of this worker
    is stored (the journal may be cut)."""

    request: TaskRequest
    journal_stored: bool
    identity: TenantIdentity


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this process when its parent dies, so no orphan outlives a killed server.

    `parent_pid` is the process whose life this one follows. Local workers are forked by a fork
    server that lives exactly as long as the scheduler, so the signal comes when either dies; if
    `parent_pid` is already gone, this process exits now.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if not _running(parent_pid):
        os._exit(1)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, and owned by another user (a worker that became its tenant)
        return True
    return True


def worker_main(conn: Connection, config: WorkerConfig) -> None:
    """Serve requests until the pipe closes or a `None` arrives.

    The worker serves the tenant of its first request only: it takes that tenant's identity (its OS
    user, when configured) before running any of its code, and refuses requests of other tenants.
    """
    die_with_parent(config.parent_pid)
    scrub_environment()
    # The scheduler stops its workers itself (`LocalExecutor.stop`), also when a terminal's Ctrl-C or
    # a process manager's SIGTERM reaches every process of the group.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    if config.nice:
        os.nice(config.nice)
    loader = DagLoader()
    store = ArtifactStore(config.artifact_url, config.inline_max_bytes)
    journal = Journal(Path(config.journal_path))
    reporter = StartedReporter(STARTED_DELAY)
    with capture_installed():
        _serve(conn, config, loader, store, journal, reporter)
    journal.close()


def _serve(
    conn: Connection,
    config: WorkerConfig,
    loader: DagLoader,
    store: ArtifactStore,
    journal: Journal,
    reporter: StartedReporter,
) -> None:
    tenant: TenantIdentity | None = None
    while True:
        try:
            envelope: Envelope | None = conn.recv()
        except EOFError:
            break
        if envelope is None:
            break
        if envelope.journal_stored:
            journal.truncate()
        if tenant is None:
            tenant = envelope.identity
            become(tenant)
            die_with_parent(config.parent_pid)  # changing the user cleared the parent-death signal
        if envelope.identity != tenant:
            outcome = _refused(envelope.request, tenant)
            journal.append(outcome)
        else:
            outcome = execute(
                envelope.request,
                loader,
                store,
                on_started=lambda started: reporter.started(lambda: conn.send(started)),
                on_finished=journal.append,
            )
        reporter.finished()
        conn.send(outcome)


def _refused(request: TaskRequest, tenant: TenantIdentity) -> TaskFinished:
    """The outcome of a request this worker must not run: it serves another tenant."""
    return TaskFinished.lost(
        request.run_id,
        request.task_id,
        request.map_index,
        request.try_number,
        f"WorkerTenantError: a worker of tenant '{tenant.tenant}' refused a task of {request.dag_id}",
    )
