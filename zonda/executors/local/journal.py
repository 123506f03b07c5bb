"""A worker's outcome journal: each `TaskFinished` is appended before it is sent to the scheduler.

If the server dies between a task's end and the scheduler's commit, the restarted scheduler reads
the journals and stores those outcomes instead of running the tasks again. Records are pickles,
length-prefixed; a torn last record (the worker died mid-write) is ignored.
"""

from __future__ import annotations

import logging
import pickle
import struct
from pathlib import Path

from zonda.worker.protocol import TaskFinished

log = logging.getLogger(__name__)
_HEADER = struct.Struct("<I")


class Journal:
    """The append side, owned by one worker process."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("ab", buffering=0)

    def append(self, record: TaskFinished) -> None:
        data = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        self._file.write(_HEADER.pack(len(data)) + data)

    def truncate(self) -> None:
        """Drop every record: the scheduler has stored them all."""
        self._file.truncate(0)
        self._file.seek(0)

    def close(self) -> None:
        self._file.close()


def read_journal(path: Path) -> list[TaskFinished]:
    """Every complete record of a journal file."""
    data = path.read_bytes()
    records: list[TaskFinished] = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        (size,) = _HEADER.unpack_from(data, offset)
        chunk = data[offset + _HEADER.size : offset + _HEADER.size + size]
        if len(chunk) < size:
            log.warning("journal %s ends with a torn record (worker died mid-write); ignored", path)
            break
        records.append(pickle.loads(chunk))
        offset += _HEADER.size + size
    return records
