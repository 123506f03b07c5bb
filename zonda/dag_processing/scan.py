"""Find the DAG files of a folder and tell which changed since the last look.

A file is a DAG file when its name is `*.py` not starting with `_` or `.`, it is not inside a folder
starting with `_` or `.` (`__pycache__`, `.git`, `_helpers`), and its text mentions "zonda" (like
Airflow's safe mode: helper modules beside the DAGs are never imported on their own). A file counts
as changed when its (mtime_ns, size) differs; only changed files are read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

MARKER = b"zonda"


@dataclass(frozen=True)
class FileStamp:
    """What the processor remembers of a file between passes."""

    mtime_ns: int
    size: int
    is_dag_file: bool


def scan(folder: Path, previous: Mapping[str, FileStamp]) -> dict[str, FileStamp]:
    """Stamp every candidate file under `folder` (absolute path -> stamp), reusing unchanged stamps."""
    stamps: dict[str, FileStamp] = {}
    for path in candidate_files(folder):
        stamp = _stamp(path, previous.get(path))
        if stamp is not None:
            stamps[path] = stamp
    return stamps


def candidate_files(folder: Path) -> Iterator[str]:
    """Absolute paths of the `*.py` files under `folder` that pass the name rules, sorted per folder."""
    for root, dirs, files in os.walk(os.path.abspath(folder)):
        dirs[:] = sorted(d for d in dirs if not _hidden(d))
        for name in sorted(files):
            if name.endswith(".py") and not _hidden(name):
                yield os.path.join(root, name)


def dag_files(stamps: Mapping[str, FileStamp]) -> frozenset[str]:
    return frozenset(path for path, stamp in stamps.items() if stamp.is_dag_file)


def changed_dag_files(previous: Mapping[str, FileStamp], current: Mapping[str, FileStamp]) -> list[str]:
    """DAG files that are new or whose stamp differs from `previous`, sorted."""
    return sorted(p for p, s in current.items() if s.is_dag_file and previous.get(p) != s)


def _stamp(path: str, previous: FileStamp | None) -> FileStamp | None:
    """The file's stamp; None if it vanished meanwhile. Reads the file only when it changed."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    if previous and (previous.mtime_ns, previous.size) == (stat.st_mtime_ns, stat.st_size):
        return previous
    return FileStamp(stat.st_mtime_ns, stat.st_size, _mentions_zonda(path))


def _mentions_zonda(path: str) -> bool:
    """True if the file mentions zonda, or cannot be read (then the child reports why as an import error)."""
    try:
        with open(path, "rb") as f:
            return MARKER in f.read().lower()
    except FileNotFoundError:
        return False
    except OSError:
        return True


def _hidden(name: str) -> bool:
    return name.startswith(("_", "."))
