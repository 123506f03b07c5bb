"""Dynamic mapping: how many instances a mapped task gets and which elements each one receives."""

from __future__ import annotations

import math
from collections.abc import Sequence


def map_count(lengths: Sequence[int]) -> int:
    """Instances of a task mapped over lists of these lengths (their cartesian product)."""
    return math.prod(lengths) if lengths else 0


def element_indices(map_index: int, lengths: Sequence[int]) -> tuple[int, ...]:
    """The element of each mapped list that instance `map_index` receives (last list varies fastest)."""
    indices: list[int] = []
    for length in reversed(lengths):
        map_index, index = divmod(map_index, length)
        indices.append(index)
    return tuple(reversed(indices))
