"""Attempt logs of remote workers, written where the API reads them (`settings.log_url`, via fsspec).

A request's `log_path` is a URL under the scheduler's log root. A local one (a plain path or
`file://`) is written by the runner directly, line by line, so `zonda logs` shows a running task's
output as it comes (on a shared folder too). For any other fsspec protocol (`s3://`, `gs://`, ...)
the runner writes a local temp file, uploaded once the attempt ends and before its outcome is
reported: those logs appear when the attempt finishes. An upload that fails is logged by the worker
and does not change the task's outcome.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import fsspec

log = logging.getLogger(__name__)


_LOCAL = (None, "file", "local")


def is_local(url: str) -> bool:
    """True if `url` names a file on this machine (a plain path or file://). Read off the URL's
    protocol: building its filesystem (`url_to_fs`) for every attempt cost more than the task."""
    return fsspec.core.split_protocol(url)[0] in _LOCAL


@contextmanager
def attempt_log(log_url: str) -> Iterator[str]:
    """The local path the runner writes the attempt's log to; a remote log is uploaded on exit."""
    if is_local(log_url):
        yield fsspec.core.split_protocol(log_url)[1]
        return
    fd, local = tempfile.mkstemp(prefix="zonda-attempt-", suffix=".log")
    os.close(fd)
    os.unlink(local)  # the runner creates it on its first write: a silent task uploads nothing
    try:
        yield local
    finally:
        if os.path.exists(local):
            _upload(local, log_url)
            os.unlink(local)


def _upload(local: str, log_url: str) -> None:
    try:
        fs, path = fsspec.core.url_to_fs(log_url)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(local, path)
    except Exception:  # a log that cannot be uploaded must not turn a task's success into a failure
        log.exception("could not upload the attempt log to %s", log_url)
