"""Local worker processes are forked from a fork server whose preloaded objects are frozen out of
the garbage collector (`zonda.executors.forkserver_frozen`), so that each worker keeps sharing
their memory pages instead of copying them at its first full collection: a real scheduler and
real worker processes, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.in_process import in_process_zonda

pytestmark = pytest.mark.slow

SOURCE = """
import gc
from pathlib import Path

from zonda import dag, task


@task
def frozen() -> None:
    Path({marks!r}).write_text(str(gc.get_freeze_count()))


@dag
def inspect_worker() -> None:
    frozen()
"""


def test_a_local_worker_starts_with_the_preloaded_objects_frozen(db_url: str, tmp_path: Path) -> None:
    marks = tmp_path / "frozen"
    with in_process_zonda(db_url, tmp_path) as zonda:
        zonda.tenant("team-a", SOURCE.format(marks=str(marks)))
        zonda.start_scheduler(workers=1)
        zonda.wait([zonda.trigger("team-a/inspect_worker")], timeout=60)

    assert int(marks.read_text()) > 10_000, "the worker's preloaded objects are not frozen"
