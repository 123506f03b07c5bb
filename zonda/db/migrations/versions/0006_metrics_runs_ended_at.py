"""runs.ended_at index: the latency dashboard finds the runs of a time window by when they ended

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_runs_ended_at"), "runs", ["ended_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_runs_ended_at"), table_name="runs")
