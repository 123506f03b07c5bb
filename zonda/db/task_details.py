"""A task instance's attempts and stored output, for the API's task details and artifact download."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from zonda.api.schemas.tasks import AttemptRecord
from zonda.core.outputs import ArtifactRef
from zonda.db.schema import task_attempts, task_instances


def list_attempts(conn: Connection, run_id: str, task_id: str, map_index: int) -> list[AttemptRecord]:
    """The instance's attempts, first try first."""
    rows = conn.execute(
        select(task_attempts)
        .where(
            task_attempts.c.run_id == run_id,
            task_attempts.c.task_id == task_id,
            task_attempts.c.map_index == map_index,
        )
        .order_by(task_attempts.c.try_number)
    )
    return [AttemptRecord.model_validate(r._asdict()) for r in rows]


def output_of(
    conn: Connection, run_id: str, task_id: str, map_index: int
) -> tuple[ArtifactRef, int | None] | None:
    """The instance's stored output and, for a mapped source, its length; None if it has none."""
    row = conn.execute(
        select(
            task_instances.c.output_serializer,
            task_instances.c.output_size,
            task_instances.c.output_data,
            task_instances.c.output_uri,
            task_instances.c.output_length,
        ).where(
            task_instances.c.run_id == run_id,
            task_instances.c.task_id == task_id,
            task_instances.c.map_index == map_index,
        )
    ).first()
    if row is None or row.output_serializer is None:
        return None
    ref = ArtifactRef(row.output_serializer, row.output_size or 0, row.output_data, row.output_uri)
    return ref, row.output_length


def output_counts(conn: Connection, run_id: str, task_ids: list[str]) -> dict[str, int]:
    """Per mapped task of `task_ids`: how many of its instances stored an output."""
    if not task_ids:
        return {}
    ti = task_instances.c
    rows = conn.execute(
        select(ti.task_id, func.count())
        .where(
            ti.run_id == run_id,
            ti.task_id.in_(task_ids),
            ti.map_index >= 0,
            ti.output_serializer.is_not(None),
        )
        .group_by(ti.task_id)
    )
    return {r[0]: int(r[1]) for r in rows}
