"""SQLite write transactions of every Zonda process queue on one OS file lock beside the DB file.

SQLite lets one writer in at a time. A connection that finds the write lock taken retries in its
busy handler, which sleeps 1, 2, 5, 10, ... up to 100 ms between tries however soon the lock is
free: under a burst of triggers the API's threads and the scheduler's loop slept hundreds of
milliseconds behind write transactions that took one or two. A thread blocked in `flock()` wakes
as soon as the holder lets go, so Zonda's writers take this lock before `BEGIN IMMEDIATE` and
release it after the commit or rollback. SQLite's own lock still guards the DB against any other
program.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUFFIX = ".write-lock"

_in_process: dict[str, threading.Lock] = {}
"""Per DB, the lock that lines up this process's own threads, so that only one of them at a time
competes for the file lock with other processes (a lock released wakes every waiter on it)."""
os.register_at_fork(after_in_child=_in_process.clear)


def lock_path(database: Path) -> Path:
    """The lock file of a SQLite DB file."""
    return database.with_name(database.name + SUFFIX)


@contextmanager
def write_lock(lock_file: str) -> Iterator[None]:
    """Hold a DB's write lock (`lock_file`, from `lock_path`) for the block (not reentrant). The
    holder opens the file itself, as `flock()` locks belong to an open file; it unlocks explicitly,
    since a child forked meanwhile holds a copy of the descriptor and closing ours alone would not
    let go."""
    threads = _in_process.setdefault(lock_file, threading.Lock())  # str keys: setdefault is atomic
    with threads:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
