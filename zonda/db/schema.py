"""The metadata schema (one schema for SQLite and PostgreSQL). Changes go through Alembic migrations."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from zonda.db.types import UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = 250

TENANT = 63
"""Tenant ids are DNS-label-like slugs (`team-a`), so they fit in queue names, paths and URLs."""

tenants = Table(
    "tenants",
    metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("display_name", String(ID), nullable=False, default=""),
    Column("dag_folders", JSON, nullable=False, default=list),
    Column("max_running_tasks", Integer),
    Column("max_active_runs", Integer),
    Column("created_at", UTCDateTime, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("user_id", String(ID), primary_key=True),
    Column("password_hash", Text),
    Column("superuser", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("user_id", String(ID), primary_key=True),
    Column("role", String(20), nullable=False),
    ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"], ondelete="CASCADE"),
    ForeignKeyConstraint(["user_id"], ["users.user_id"], ondelete="CASCADE"),
    Index(None, "user_id"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_id", String(32), primary_key=True),
    Column("secret_hash", String(64), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("name", String(ID), nullable=False, default=""),
    Column("user_id", String(ID)),
    Column("tenant_id", String(TENANT)),
    Column("run_id", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Index(None, "user_id"),
    Index(None, "run_id"),
)

secrets = Table(
    "secrets",
    metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("name", String(ID), primary_key=True),
    Column("kind", String(20), nullable=False, default="secret"),
    Column("ciphertext", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("tenant_id", String(TENANT)),
    Column("actor", String(ID), nullable=False),
    Column("action", String(80), nullable=False),
    Column("target", String(ID * 2), nullable=False, default=""),
    Column("details", JSON, nullable=False, default=dict),
    Column("origin", String(ID), nullable=False, default=""),
    Index(None, "tenant_id", "id"),
    Index(None, "at"),
)

dags = Table(
    "dags",
    metadata,
    Column("dag_id", String(ID), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("fileloc", Text, nullable=False),
    Column("latest_version", Integer, nullable=False),
    Column("paused", Boolean, nullable=False, default=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("owner", String(ID), nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("tags", JSON, nullable=False, default=list),
    Column("schedule", String(ID)),
    Column("timezone", String(64), nullable=False, default="UTC"),
    Column("next_fire_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "tenant_id"),
)

dag_versions = Table(
    "dag_versions",
    metadata,
    Column("dag_id", String(ID), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("hash", String(64), nullable=False),
    Column("spec", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("fileloc", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "dag_id", "hash", unique=True),
)

import_errors = Table(
    "import_errors",
    metadata,
    Column("fileloc", String(1024), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("error", Text, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("dag_id", String(ID), nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", String(20), nullable=False),
    Column("key", String(ID)),
    Column("params", JSON, nullable=False, default=dict),
    Column("trigger", String(20), nullable=False),
    Column("logical_date", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("owner", String(ID)),
    Column("lease_until", UTCDateTime),
    Index(None, "dag_id", "created_at"),
    Index(None, "key", "created_at"),
    Index(None, "state", "created_at"),
    Index(None, "created_at"),
    Index(None, "dag_id", "logical_date", unique=True),
    Index("ix_runs_owner", "owner"),
    Index(None, "tenant_id", "created_at"),
    Index(None, "ended_at"),
)

task_instances = Table(
    "task_instances",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("task_id", String(ID), primary_key=True),
    Column("map_index", Integer, primary_key=True),
    Column("state", String(20), nullable=False),
    Column("try_number", Integer, nullable=False, default=0),
    Column("max_tries", Integer, nullable=False, default=1),
    Column("queued_at", UTCDateTime),
    Column("started_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("next_try_at", UTCDateTime),
    Column("output_serializer", String(100)),
    Column("output_size", Integer),
    Column("output_data", LargeBinary),
    Column("output_uri", Text),
    Column("output_length", Integer),
    Column("error", Text),
    ForeignKeyConstraint(["run_id"], ["runs.run_id"], ondelete="CASCADE"),
    Index(None, "state"),
)

task_attempts = Table(
    "task_attempts",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("task_id", String(ID), primary_key=True),
    Column("map_index", Integer, primary_key=True),
    Column("try_number", Integer, primary_key=True),
    Column("state", String(20), nullable=False),
    Column("queued_at", UTCDateTime),
    Column("started_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("error", Text),
    ForeignKeyConstraint(["run_id"], ["runs.run_id"], ondelete="CASCADE"),
)

usage_daily = Table(
    "usage_daily",
    metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("attempts", Integer, nullable=False),
    Column("task_seconds", Float, nullable=False),
    Column("cpu_seconds", Float, nullable=False),
    Column("gpu_seconds", Float, nullable=False),
)
"""Usage per tenant per UTC day; no foreign key to runs, so it outlives the runs it was rolled up from."""

pools = Table(
    "pools",
    metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("name", String(ID), primary_key=True),
    Column("slots", Integer, nullable=False),
    Column("description", Text, nullable=False, default=""),
)

commands = Table(
    "commands",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(40), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("payload", JSON, nullable=False, default=dict),
    Column("created_at", UTCDateTime, nullable=False),
    Column("done_at", UTCDateTime),
    Index(None, "done_at", "id"),
)

components = Table(
    "components",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("hostname", String(ID), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("waiting", JSON),
)

workers = Table(
    "workers",
    metadata,
    Column("worker_id", String(ID), primary_key=True),
    Column("hostname", String(ID), nullable=False),
    Column("queues", JSON, nullable=False, default=list),
    Column("concurrency", Integer, nullable=False),
    Column("cpus", Integer),
    Column("resting", Integer),
    Column("running", JSON, nullable=False, default=list),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
)
