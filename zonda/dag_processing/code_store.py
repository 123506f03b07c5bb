"""The code store: each DAG version's source saved once as `<code_dir>/<tenant>/<hash>.py`, for the workers.

A version's hash covers its spec and its source, so a file name never changes meaning and a
file is written once (atomically: temp file + rename, so a worker never reads half a file).
Each tenant's code has its own folder, created traversable but not listable (0711); where tenants'
workers run as their own OS users the local executor hands that folder to the tenant's user
(0700, see `zonda.executors.local.tenancy`), so no tenant reads another's code.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from zonda.core.spec import DagSpec


def version_hash(spec: DagSpec, source: str) -> str:
    """sha256 of the spec JSON and the source: equal hashes mean nothing changed for this DAG."""
    return hashlib.sha256((spec.to_json() + source).encode("utf-8")).hexdigest()


def tenant_code_dir(code_dir: Path, tenant: str) -> Path:
    """The folder of one tenant's DAG versions."""
    return code_dir / tenant


def code_path(code_dir: Path, digest: str) -> Path:
    return code_dir / f"{digest}.py"


def stored_code(code_dir: Path, tenant: str, digest: str) -> Path:
    """Where version `digest` of a tenant is stored; a file of the older flat layout
    (`<code_dir>/<hash>.py`) is moved into the tenant's folder on first use."""
    path = code_path(tenant_code_dir(code_dir, tenant), digest)
    flat = code_path(code_dir, digest)
    if not path.exists() and flat.exists():
        _make_dir(path.parent)
        with contextlib.suppress(FileNotFoundError):  # another scheduler moved it first
            os.replace(flat, path)
    return path


def store_source(code_dir: Path, digest: str, source: str) -> Path:
    """Write `source` as the code of version `digest` unless it is already stored; returns its path."""
    path = code_path(code_dir, digest)
    if path.exists():
        return path
    _make_dir(code_dir)
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


def _make_dir(folder: Path) -> None:
    """Create a code folder others may traverse (workers are told exact paths) but not list."""
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o711)
