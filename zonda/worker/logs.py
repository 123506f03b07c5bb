"""Task logs: an attempt's stdout, stderr and logging records go to its own file, secrets masked.

Capture is installed once per process (stream proxies and one logging handler); each attempt
only points it at its file, which is created on the first write, so a silent task costs no I/O.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from zonda.sdk.secrets import masked_values

MASK = "***"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def mask_text(text: str, secrets: frozenset[str]) -> str:
    """`text` with every secret value replaced by ***."""
    for value in secrets:
        if value in text:
            text = text.replace(value, MASK)
    return text


class AttemptLog:
    """The log file of the attempt running now, opened on first write with a header line."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.header = ""
        self._file: IO[str] | None = None

    @property
    def active(self) -> bool:
        return self.path is not None

    def begin(self, path: str, header: str) -> None:
        self.path, self.header = Path(path), header

    def end(self, footer: str = "") -> None:
        if self._file is not None:
            if footer:
                self._file.write(mask_text(footer, masked_values()))
            self._file.close()
        self.path, self._file = None, None

    def write(self, text: str) -> None:
        if self._file is None:
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
            self._file.write(self.header)
        self._file.write(mask_text(text, masked_values()))

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()


class _Stream(io.TextIOBase):
    """sys.stdout/sys.stderr: into the attempt's log while a task runs, else to the original stream."""

    def __init__(self, log: AttemptLog, fallback: IO[str]) -> None:
        self.log, self.fallback = log, fallback

    def write(self, text: str) -> int:
        if self.log.active:
            self.log.write(text)
        else:
            self.fallback.write(text)
        return len(text)

    def flush(self) -> None:
        (self.log if self.log.active else self.fallback).flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False


class _DuringTask(logging.Filter):
    def __init__(self, log: AttemptLog) -> None:
        super().__init__()
        self.log = log

    def filter(self, record: logging.LogRecord) -> bool:
        return self.log.active


_current: AttemptLog | None = None


@contextmanager
def capture_installed() -> Iterator[AttemptLog]:
    """Route this process's output through attempt logs (root logger at INFO) until the block ends."""
    global _current
    if _current is not None:
        yield _current
        return
    log = AttemptLog()
    old_out, old_err = sys.stdout, sys.stderr
    handler = logging.StreamHandler(_Stream(log, old_err))
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_DuringTask(log))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    sys.stdout, sys.stderr = _Stream(log, old_out), _Stream(log, old_err)
    _current = log
    try:
        yield log
    finally:
        _current = None
        sys.stdout, sys.stderr = old_out, old_err
        root.removeHandler(handler)
        root.setLevel(old_level)


@contextmanager
def captured_output(log_path: str, header: str) -> Iterator[AttemptLog]:
    """Send the block's output to `log_path` (appending; created only if something is written)."""
    with capture_installed() as log:
        log.begin(log_path, header)
        try:
            yield log
        finally:
            log.end()


def log_path(logs_dir: str, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """Where an attempt's log lives: one file per attempt."""
    name = task_id if map_index < 0 else f"{task_id}.{map_index}"
    return f"{logs_dir}/{dag_id}/{run_id}/{name}/attempt-{try_number}.log"
