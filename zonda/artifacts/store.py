"""The artifact store: bytes under an fsspec URL (a local folder by default, s3:// etc. for clusters)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import fsspec

from zonda.artifacts.serializers import DEFAULT_CHAIN, resolve_serializer
from zonda.core.outputs import ArtifactRef
from zonda.errors import SerializationError

CACHE_BYTES = 64 * 1024 * 1024


class ArtifactStore:
    """Reads and writes artifact bytes under one root URL."""

    def __init__(self, url: str, inline_max_bytes: int = 4096) -> None:
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self.inline_max_bytes = inline_max_bytes
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        self._recent_size = 0

    def put(self, path: str, data: bytes) -> str:
        full = f"{self.root.rstrip('/')}/{path}"
        self.fs.makedirs(full.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(full, "wb") as f:
            f.write(data)
        return full if self.protocol == "file" else f"{self.protocol}://{full}"

    def get(self, uri: str) -> bytes:
        """The bytes at `uri`; recently read artifacts come from memory (artifacts never change)."""
        data = self._recent.get(uri)
        if data is None:
            with self.fs.open(uri, "rb") as f:
                data = f.read()
            self._remember(uri, data)
        return data

    def _remember(self, uri: str, data: bytes) -> None:
        if len(data) > CACHE_BYTES // 8:
            return
        self._recent[uri] = data
        self._recent_size += len(data)
        while self._recent_size > CACHE_BYTES:
            _, dropped = self._recent.popitem(last=False)
            self._recent_size -= len(dropped)

    def save(self, value: Any, path: str, serializer: str | None = None, where: str = "task") -> ArtifactRef:
        """Serialize `value` (small values stay inline) or raise SerializationError saying why."""
        name, data = serialize(value, serializer, where)
        if len(data) <= self.inline_max_bytes:
            return ArtifactRef(serializer=name, size=len(data), data=data)
        return ArtifactRef(serializer=name, size=len(data), uri=self.put(path, data))

    def load(self, ref: ArtifactRef) -> Any:
        data = ref.data if ref.data is not None else self.get(ref.uri or "")
        return resolve_serializer(ref.serializer).loads(data)


def serialize(value: Any, serializer: str | None, where: str) -> tuple[str, bytes]:
    """Bytes of `value` by the named serializer, or the first of JSON then pickle that takes it."""
    chain = (serializer,) if serializer else DEFAULT_CHAIN
    reasons: list[str] = []
    for name in chain:
        try:
            return name, resolve_serializer(name).dumps(value)
        except (TypeError, ValueError, RecursionError) as exc:
            reasons.append(f"{name}: {exc}")
    raise SerializationError(
        f"the return value of {where} ({type(value).__name__}) cannot be stored ({'; '.join(reasons)}); "
        "return plain data or a picklable object, or set @task(serializer='package.module:Serializer')"
    )


def output_path(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """Where an attempt's output goes under the artifact root: `<tenant>/<dag>/<run>/<task>/try-<n>.out`.

    The DAG id is qualified (`team-a/etl`), so each tenant's artifacts live in a folder of their own,
    which the local executor hands to the tenant's OS user (see `zonda.executors.local.tenancy`).
    """
    suffix = "" if map_index < 0 else f".{map_index}"
    return f"{dag_id}/{run_id}/{task_id}{suffix}/try-{try_number}.out"
