"""A task instance's details (attempts, output) and its artifact's bytes, scoped like its run.

Only artifacts under the run's tenant folder of the artifact store are served: an output URI is
reported by a worker, which runs tenant code, so the API never follows one that points elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zonda.api.schemas.tasks import ArtifactRecord, InputRecord, TaskInstanceRecord
from zonda.artifacts.store import ArtifactStore
from zonda.core.outputs import ArtifactRef
from zonda.core.permissions import Action
from zonda.db import runs as run_rows
from zonda.db import task_details as db
from zonda.db.dags import get_version
from zonda.db.engine import read_txn
from zonda.errors import NotFoundError
from zonda.services.runs import require_run

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from zonda.core.spec import DagSpec
    from zonda.services.context import Services

PREVIEW_CHARS = 2000


@dataclass(frozen=True)
class ArtifactBytes:
    """An artifact's content and the serializer that reads it."""

    data: bytes
    serializer: str


def get_task_instance(svc: Services, run_id: str, task_id: str, map_index: int = -1) -> TaskInstanceRecord:
    """A task instance with its attempts, the upstream values it takes, and its output metadata."""
    with read_txn(svc.engine) as conn:
        run = require_run(svc, conn, run_id, Action.READ)
        task = run_rows.get_task_instance(conn, run_id, task_id, map_index)
        if task is None:
            raise NotFoundError(f"run {run_id} has no task '{task_id}' with map index {map_index}")
        attempts = db.list_attempts(conn, run_id, task_id, map_index)
        output = db.output_of(conn, run_id, task_id, map_index)
        version = get_version(conn, run.dag_id, run.dag_version)
        inputs = _inputs(conn, run_id, version.spec, task_id, map_index) if version else []
    record = TaskInstanceRecord(run_id=run_id, attempts=attempts, inputs=inputs, **task.model_dump())
    if output is not None:
        record.output = _artifact_record(*output)
    return record


def _inputs(conn: Connection, run_id: str, spec: DagSpec, task_id: str, map_index: int) -> list[InputRecord]:
    """The return values the instance takes: one per data upstream task (a count for a mapped one)."""
    if task_id not in spec.topo_index:
        return []
    task = spec.task(task_id)
    mapped_over = {s.ref for s in task.map_sources if s.kind == "task"}
    mapped_ups = [up for up in task.data_upstream if spec.task(up).is_mapped]
    counts = db.output_counts(conn, run_id, mapped_ups)
    found = []
    for up in task.data_upstream:
        if up in mapped_ups:
            found.append(InputRecord(task_id=up, outputs=counts.get(up, 0)))
            continue
        output = db.output_of(conn, run_id, up, -1)
        item = map_index if up in mapped_over and map_index >= 0 else None
        found.append(InputRecord(task_id=up, output=_artifact_record(*output) if output else None, item=item))
    return found


def read_output(svc: Services, run_id: str, task_id: str, map_index: int = -1) -> ArtifactBytes:
    """The bytes of a task's stored output; NotFoundError if it has none (or it is not the tenant's)."""
    with read_txn(svc.engine) as conn:
        run = require_run(svc, conn, run_id, Action.READ)
        output = db.output_of(conn, run_id, task_id, map_index)
    if output is None:
        raise NotFoundError(f"task '{task_id}' of run {run_id} has no stored output (yet)")
    ref = output[0]
    if ref.data is not None:
        return ArtifactBytes(ref.data, ref.serializer)
    store = ArtifactStore(svc.settings.resolved_artifact_url)
    if not _under(store, ref.uri or "", run.tenant_id):
        raise NotFoundError(
            f"the output of task '{task_id}' is not in tenant {run.tenant_id}'s artifact folder"
        )
    return ArtifactBytes(store.get(ref.uri or ""), ref.serializer)


def _under(store: ArtifactStore, uri: str, tenant: str) -> bool:
    """Whether `uri` lies in the tenant's folder of the store (`<root>/<tenant>/...`)."""
    folder = f"{store.root.rstrip('/')}/{tenant}/"
    prefix = folder if store.protocol == "file" else f"{store.protocol}://{folder}"
    return uri.startswith(prefix) and "/../" not in uri


def _artifact_record(ref: ArtifactRef, length: int | None) -> ArtifactRecord:
    return ArtifactRecord(
        serializer=ref.serializer,
        size=ref.size,
        inline=ref.data is not None,
        uri=ref.uri,
        mapped_length=length,
        preview=_preview(ref),
    )


def _preview(ref: ArtifactRef) -> str | None:
    """The start of an inline JSON value, pretty-printed; None for other serializers."""
    if ref.data is None or ref.serializer != "json":
        return None
    try:
        text = json.dumps(json.loads(ref.data), indent=2, ensure_ascii=False)
    except ValueError:
        return None
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "\n..."
