"""The artifact store: bytes under an fsspec URL (a local folder by default, s3:// etc. for clusters)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import fsspec

from zonda.artifacts.serializers import DEFAULT_CHAIN, resolve_serializer
from zonda.core.outputs import ArtifactRef
from zonda.errors import NotFoundError, SerializationError

CACHE_BYTES = 64 * 1024 * 1024
"""Artifact bytes a process keeps after reading them."""
SHARED_BYTES = 32 * 1024 * 1024
"""Serialized size of the decoded values a process keeps for `load_shared` (decoded, they are
larger; a mapped task's instances decode the list anyway, one at a time, without it)."""


class _Recent:
    """Values by key; beyond `budget` bytes (sizes as given), the least recently used go. Values
    larger than `largest` are not kept."""

    def __init__(self, budget: int, largest: int) -> None:
        self.budget = budget
        self.largest = largest
        self._values: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._size = 0

    def get(self, key: Hashable) -> Any | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        self._values.move_to_end(key)
        return entry[0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        if size > self.largest or key in self._values:
            return
        self._values[key] = (value, size)
        self._size += size
        while self._size > self.budget:
            _, (_, dropped) = self._values.popitem(last=False)
            self._size -= dropped


class ArtifactStore:
    """Reads and writes artifact bytes under one root URL."""

    def __init__(self, url: str, inline_max_bytes: int = 4096) -> None:
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self.inline_max_bytes = inline_max_bytes
        self._recent = _Recent(CACHE_BYTES, largest=CACHE_BYTES // 8)
        self._shared = _Recent(SHARED_BYTES, largest=SHARED_BYTES)

    def put(self, path: str, data: bytes) -> str:
        full = f"{self.root.rstrip('/')}/{path}"
        self.fs.makedirs(full.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(full, "wb") as f:
            f.write(data)
        return full if self.protocol == "file" else f"{self.protocol}://{full}"

    def get(self, uri: str) -> bytes:
        """The bytes at `uri`; recently read artifacts come from memory (artifacts never change)."""
        data: bytes | None = self._recent.get(uri)
        if data is None:
            try:
                with self.fs.open(uri, "rb") as f:
                    data = f.read()
            except FileNotFoundError as exc:
                raise NotFoundError(
                    f"artifact {uri} is not there: it was deleted, or this process does not see the artifact "
                    "store of the task that wrote it (workers and the API must share ZONDA_ARTIFACT_URL)"
                ) from exc
            self._recent.put(uri, data, len(data))
        return data

    def save(self, value: Any, path: str, serializer: str | None = None, where: str = "task") -> ArtifactRef:
        """Serialize `value` (small values stay inline) or raise SerializationError saying why."""
        name, data = serialize(value, serializer, where)
        if len(data) <= self.inline_max_bytes:
            return ArtifactRef(serializer=name, size=len(data), data=data)
        return ArtifactRef(serializer=name, size=len(data), uri=self.put(path, data))

    def load(self, ref: ArtifactRef) -> Any:
        data = ref.data if ref.data is not None else self.get(ref.uri or "")
        return resolve_serializer(ref.serializer).loads(data)

    def load_shared(self, ref: ArtifactRef) -> Any:
        """The decoded value, kept for later calls with the same artifact: the instances of a
        mapped task each take one element of one list, and decoding it for each would cost them
        O(list length). Shared, so read-only: copy whatever is handed to task code."""
        key = (ref.serializer, ref.uri or ref.data)
        value = self._shared.get(key)
        if value is None:
            value = self.load(ref)
            self._shared.put(key, value, ref.size)
        return value


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
