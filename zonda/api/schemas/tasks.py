"""The JSON shapes of a task instance's details: its attempts and its output artifact."""

from __future__ import annotations

from pydantic import BaseModel, Field

from zonda.api.schemas import TaskRecord, Timestamp


class AttemptRecord(BaseModel):
    """One try of a task instance (each has its own log)."""

    try_number: int
    state: str
    queued_at: Timestamp | None = None
    started_at: Timestamp | None = None
    ended_at: Timestamp | None = None
    error: str | None = None


class ArtifactRecord(BaseModel):
    """A task's stored return value: how to read it, and a short preview of JSON values."""

    serializer: str
    size: int
    inline: bool
    uri: str | None = None
    mapped_length: int | None = None
    preview: str | None = None


class InputRecord(BaseModel):
    """A return value a task instance takes from one of its upstream tasks."""

    task_id: str
    output: ArtifactRecord | None = None
    item: int | None = Field(
        default=None, description="For a mapped instance: the index it takes of this list"
    )
    outputs: int | None = Field(
        default=None, description="For a mapped upstream task: how many values it passes"
    )


class TaskInstanceRecord(TaskRecord):
    """A task instance with its attempts, the upstream values it takes, and its output."""

    run_id: str
    attempts: list[AttemptRecord] = Field(default_factory=list)
    inputs: list[InputRecord] = Field(default_factory=list)
    output: ArtifactRecord | None = None
