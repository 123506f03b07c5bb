"""Task logs: an attempt's stdout, stderr and logging records go to its own file, secrets masked."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from zonda.sdk.secrets import masked_values

MASK = "***"


def mask_text(text: str, secrets: frozenset[str]) -> str:
    """`text` with every secret value replaced by ***."""
    for value in secrets:
        if value in text:
            text = text.replace(value, MASK)
    return text


class MaskingWriter(io.TextIOBase):
    """A text stream that hides the current task's secret values before writing to the log file."""

    def __init__(self, target: io.TextIOBase) -> None:
        self.target = target

    def write(self, text: str) -> int:
        self.target.write(mask_text(text, masked_values()))
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def writable(self) -> bool:
        return True


@contextmanager
def captured_output(log_path: str) -> Iterator[MaskingWriter]:
    """Send stdout, stderr and root-logger records of the block to `log_path` (appending)."""
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8", buffering=1) as raw:
        writer = MaskingWriter(raw)
        handler = logging.StreamHandler(writer)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        old_level, old_out, old_err = root.level, sys.stdout, sys.stderr
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        sys.stdout = sys.stderr = writer
        try:
            yield writer
        finally:
            sys.stdout, sys.stderr = old_out, old_err
            root.removeHandler(handler)
            root.setLevel(old_level)


def log_path(logs_dir: str, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """Where an attempt's log lives: one file per attempt."""
    name = task_id if map_index < 0 else f"{task_id}.{map_index}"
    return f"{logs_dir}/{dag_id}/{run_id}/{name}/attempt-{try_number}.log"
