"""Task logs: the text of one attempt's log (the latest attempt unless a try is named).

Logs live under `settings.resolved_log_url`, read through fsspec: a local folder by default, or any
URL the workers write to (`ZONDA_LOG_URL`, e.g. s3://bucket/logs; see executors/celery/logs.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import fsspec

from zonda.core.permissions import Action
from zonda.db import runs as db
from zonda.db.engine import read_txn
from zonda.errors import NotFoundError
from zonda.services.runs import require_run
from zonda.worker.logs import log_path

if TYPE_CHECKING:
    from zonda.api.schemas import TaskRecord
    from zonda.services.context import Services


def read_log(
    svc: Services, run_id: str, task_id: str, map_index: int = -1, try_number: int | None = None
) -> str:
    """The attempt's log text ("" if it wrote nothing); NotFoundError saying which of run, task or try is missing."""
    with read_txn(svc.engine) as conn:
        run = require_run(svc, conn, run_id, Action.READ)
        ti = db.get_task_instance(conn, run_id, task_id, map_index)
    if ti is None:
        raise NotFoundError(_no_task(task_id, map_index, run_id, [t.task_id for t in run.tasks]))
    attempt = _attempt(ti, run_id, try_number)
    url = log_path(svc.settings.resolved_log_url, run.dag_id, run_id, task_id, map_index, attempt)
    return read_text(url)


def read_text(url: str) -> str:
    """The text at an fsspec URL or local path ("" if nothing is there yet)."""
    fs, path = fsspec.core.url_to_fs(url)
    try:
        with fs.open(path, "rb") as f:
            data: bytes = f.read()
    except FileNotFoundError:
        return ""
    return data.decode("utf-8", errors="replace")


def _attempt(ti: TaskRecord, run_id: str, try_number: int | None) -> int:
    """The try to show: the one asked for if it exists, else the latest; NotFoundError otherwise."""
    if ti.try_number < 1:
        raise NotFoundError(f"task '{ti.task_id}' in run {run_id} has not started yet, so it has no log")
    if try_number is None:
        return ti.try_number
    if not 1 <= try_number <= ti.try_number:
        raise NotFoundError(
            f"task '{ti.task_id}' in run {run_id} has no try {try_number}; it has tries 1 to {ti.try_number}"
        )
    return try_number


def _no_task(task_id: str, map_index: int, run_id: str, task_ids: list[str]) -> str:
    """The message for a task instance the run does not have."""
    where = f"task '{task_id}'" + ("" if map_index < 0 else f" map index {map_index}")
    return f"{where} is not in run {run_id}; its tasks: {', '.join(dict.fromkeys(task_ids))}"
