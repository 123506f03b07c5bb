"""The code store: each DAG version's source saved once as `<code_dir>/<hash>.py`, for the workers.

A version's hash covers its spec and its source, so a file name never changes meaning and a
file is written once (atomically: temp file + rename, so a worker never reads half a file).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from zonda.core.spec import DagSpec


def version_hash(spec: DagSpec, source: str) -> str:
    """sha256 of the spec JSON and the source: equal hashes mean nothing changed for this DAG."""
    return hashlib.sha256((spec.to_json() + source).encode("utf-8")).hexdigest()


def code_path(code_dir: Path, digest: str) -> Path:
    return code_dir / f"{digest}.py"


def store_source(code_dir: Path, digest: str, source: str) -> Path:
    """Write `source` as the code of version `digest` unless it is already stored; returns its path."""
    path = code_path(code_dir, digest)
    if path.exists():
        return path
    code_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=code_dir, prefix=f".{digest}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # workers may run as another user of a shared folder
        with os.fdopen(fd, "wb") as f:
            f.write(source.encode("utf-8"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
