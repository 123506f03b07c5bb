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
from zonda.worker.loader import DagLoader
from zonda.worker.logs import capture_installed
from zonda.worker.protocol import TaskRequest
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
    """A request plus a note that every earlier outcome of this worker is stored (journal may be cut)."""

    request: TaskRequest
    journal_stored: bool


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this process when its parent dies, so no orphan outlives a killed server."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


def worker_main(conn: Connection, config: WorkerConfig) -> None:
    """Serve requests until the pipe closes or a `None` arrives."""
    die_with_parent(config.parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if config.nice:
        os.nice(config.nice)
    loader = DagLoader()
    store = ArtifactStore(config.artifact_url, config.inline_max_bytes)
    journal = Journal(Path(config.journal_path))
    reporter = StartedReporter(STARTED_DELAY)
    with capture_installed():
        _serve(conn, loader, store, journal, reporter)
    journal.close()


def _serve(
    conn: Connection, loader: DagLoader, store: ArtifactStore, journal: Journal, reporter: StartedReporter
) -> None:
    while True:
        try:
            envelope: Envelope | None = conn.recv()
        except EOFError:
            break
        if envelope is None:
            break
        if envelope.journal_stored:
            journal.truncate()
        outcome = execute(
            envelope.request,
            loader,
            store,
            on_started=lambda started: reporter.started(lambda: conn.send(started)),
        )
        journal.append(outcome)
        reporter.finished()
        conn.send(outcome)
