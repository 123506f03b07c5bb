"""components.waiting: a scheduler's queued tasks not yet started, per tenant and broker queue

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("components") as batch:
        batch.add_column(sa.Column("waiting", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("components") as batch:
        batch.drop_column("waiting")
