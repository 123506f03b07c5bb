"""The Celery result backend of Zonda's apps: none that stores anything, and one that a revoke can use.

Outcomes go to the scheduler's reply queue (`events.py`), so Celery keeps no results. Celery's
own "disabled" backend raises on every state lookup, and a revoke looks up the state of each id
it names on every worker that receives it: each slot logged a warning per id ("Failed to mark
task ... as revoked in backend") for each withdrawal and kill, and spent most of the revoke's
CPU on raising and logging it.
"""

from __future__ import annotations

from typing import Any

from celery import states
from celery.backends.base import DisabledBackend

NO_RESULTS = "zonda.executors.celery.results:NoResults"
"""The `result_backend` setting that selects `NoResults`."""


class NoResults(DisabledBackend):  # type: ignore[misc]
    """Stores nothing; every task's state is unknown (`PENDING`, as Celery says of ids it has no
    result for). Anything else that needs results still fails, as with Celery's disabled backend."""

    def get_state(self, task_id: str, *args: Any, **kwargs: Any) -> str:
        return str(states.PENDING)
