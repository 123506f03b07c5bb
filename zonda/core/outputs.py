"""Where a task's return value lives: inline bytes (small values) or a URI in the artifact store."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """A stored return value and the serializer that reads it back."""

    serializer: str
    size: int
    data: bytes | None = None
    uri: str | None = None
