"""Import DAG files in child processes (`zonda.dag_processing.child`), a few at a time, each with a deadline.

A child that hangs is killed with its whole process group after `timeout` seconds; a child that
crashes or answers garbage becomes an import error of its file. Either way the other files go on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from zonda.core.spec import DagSpec, dag_spec_from_dict
from zonda.executors.local.tenancy import TenantIdentity, tenant_environment

log = logging.getLogger(__name__)

CHILD_MODULE = "zonda.dag_processing.child"
STDERR_TAIL = 4000


@dataclass(frozen=True)
class FileResult:
    """The outcome of importing one DAG file: its DAG specs and source, or why it failed."""

    fileloc: str
    specs: tuple[DagSpec, ...] = ()
    source: str = ""
    error: str | None = None
    duration: float = 0.0


def timeout_message(timeout: float) -> str:
    return (
        f"DAG file took longer than {timeout:g} s to import (ZONDA_PARSE_TIMEOUT); move slow work into tasks"
    )


def parse_files(
    paths: Sequence[str], processes: int, timeout: float, identity: TenantIdentity | None = None
) -> list[FileResult]:
    """Import each file in its own child, at most `processes` at once; results in the order of `paths`.

    The children run as the tenant's OS user when `identity` has one, and never get the server's
    credentials in their environment: a DAG file is tenant code.
    """
    if not paths:
        return []
    workers = min(processes, len(paths))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zonda-parse") as pool:
        return list(pool.map(partial(parse_file, timeout=timeout, identity=identity), paths))


def parse_file(fileloc: str, timeout: float, identity: TenantIdentity | None = None) -> FileResult:
    """Import one file in a child process; never raises (a failure of ours is the file's error too)."""
    start = time.monotonic()
    try:
        result = _run_child(fileloc, timeout, identity)
    except Exception:
        log.exception("could not get an answer for DAG file %s", fileloc)
        result = FileResult(fileloc, error=traceback.format_exc())
    result = replace(result, duration=time.monotonic() - start)
    _log_result(result)
    return result


def _run_child(fileloc: str, timeout: float, identity: TenantIdentity | None) -> FileResult:
    command = [sys.executable, "-m", CHILD_MODULE, fileloc]
    user: dict[str, Any] = {}
    if identity is not None and identity.uid is not None:
        user = {"user": identity.uid, "group": identity.gid, "extra_groups": [], "cwd": identity.home}
    with subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=tenant_environment(),
        **user,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return FileResult(fileloc, error=timeout_message(timeout))
    if err:
        log.debug("DAG file %s wrote to stderr:\n%s", fileloc, err.decode(errors="replace"))
    return _read_answer(fileloc, proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the child and anything it started (it leads its own session, so its pid is the group id)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.kill()


def _read_answer(fileloc: str, returncode: int, out: bytes, err: bytes) -> FileResult:
    if returncode != 0 or not out:
        tail = err.decode(errors="replace")[-STDERR_TAIL:]
        return FileResult(fileloc, error=f"the import process exited with status {returncode}:\n{tail}")
    answer = json.loads(out)
    if "error" in answer:
        return FileResult(fileloc, error=str(answer["error"]))
    specs = tuple(dag_spec_from_dict(d) for d in answer["dags"])
    return FileResult(fileloc, specs=specs, source=str(answer["source"]))


def _log_result(result: FileResult) -> None:
    if result.error is None:
        log.info("parsed %s in %.2fs: %d DAG(s)", result.fileloc, result.duration, len(result.specs))
        return
    last_line = result.error.strip().splitlines()[-1] if result.error.strip() else "?"
    log.warning("failed to import %s in %.2fs: %s", result.fileloc, result.duration, last_line)
