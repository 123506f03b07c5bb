"""Path and query parameters shared by several routes, with the bounds the DB columns can hold."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from zonda.api.schemas import INT32_MAX

MapIndex = Annotated[
    int, Query(ge=-1, le=INT32_MAX, description="Index of a mapped instance; -1 for an unmapped task")
]
TryNumber = Annotated[int | None, Query(ge=1, le=INT32_MAX, description="Attempt; default: the latest")]
VersionNumber = Annotated[int, Path(ge=1, le=INT32_MAX, description="A DAG version number")]
