"""usage_daily: task-, CPU- and GPU-seconds per tenant per UTC day, kept apart from runs

The scheduler adds to it in the transaction that records each finished attempt, so the bill
survives the deletion of old runs. Attempts recorded before this revision are rolled up once here.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from zonda.core.usage import Charge, rollup
from zonda.db.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    usage = op.create_table(
        "usage_daily",
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("task_seconds", sa.Float(), nullable=False),
        sa.Column("cpu_seconds", sa.Float(), nullable=False),
        sa.Column("gpu_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", name=op.f("pk_usage_daily")),
    )
    attempts = sa.table(
        "task_attempts",
        sa.column("run_id"),
        sa.column("started_at", UTCDateTime),
        sa.column("ended_at", UTCDateTime),
    )
    runs = sa.table("runs", sa.column("run_id"), sa.column("tenant_id"))
    query = sa.select(runs.c.tenant_id, attempts.c.started_at, attempts.c.ended_at).join(
        runs, runs.c.run_id == attempts.c.run_id
    )
    days = rollup(Charge(r.tenant_id, r.started_at, r.ended_at) for r in op.get_bind().execute(query))
    if days:
        op.bulk_insert(
            usage,
            [
                {
                    "tenant_id": d.tenant_id,
                    "day": d.day,
                    "attempts": d.usage.attempts,
                    "task_seconds": d.usage.task_seconds,
                    "cpu_seconds": d.usage.cpu_seconds,
                    "gpu_seconds": d.usage.gpu_seconds,
                }
                for d in days
            ],
        )


def downgrade() -> None:
    op.drop_table("usage_daily")
