"""tenancy: tenants, users, memberships, tokens, secrets, audit log; a tenant on every owned row

Rows that existed before (a single-team installation) move to the tenant `default`, and their
DAG ids get its prefix (`default/etl`), as the DAG processor of that tenant will name them.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from zonda.db.types import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TENANT = 63
ID = 250
OWNED = ("dags", "runs", "import_errors")


def upgrade() -> None:
    tenants = _create_identity_tables()
    _create_secrets_and_audit()
    for table in OWNED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("tenant_id", sa.String(TENANT), nullable=False, server_default="default"))
    for table in ("dags", "dag_versions", "runs"):
        op.execute(
            sa.text(f"UPDATE {table} SET dag_id = 'default/' || dag_id WHERE dag_id NOT LIKE '%/%'")  # noqa: S608
        )
    with op.batch_alter_table("dags") as batch:
        batch.create_index("ix_dags_tenant_id", ["tenant_id"])
    with op.batch_alter_table("runs") as batch:
        batch.create_index("ix_runs_tenant_id_created_at", ["tenant_id", "created_at"])
    _tenant_owned_pools()
    if _has_rows("dags") or _has_rows("runs"):
        default = {"tenant_id": "default", "display_name": "Default", "dag_folders": [], "created_at": datetime.now(UTC)}
        op.bulk_insert(tenants, [default])


def downgrade() -> None:
    with op.batch_alter_table("pools") as batch:
        batch.drop_constraint("pk_pools", type_="primary")
        batch.drop_column("tenant_id")
        batch.create_primary_key("pk_pools", ["name"])
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_tenant_id_created_at")
    with op.batch_alter_table("dags") as batch:
        batch.drop_index("ix_dags_tenant_id")
    for table in OWNED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("tenant_id")
    for table in ("audit_log", "secrets", "api_tokens", "memberships", "users", "tenants"):
        op.drop_table(table)


def _create_identity_tables() -> sa.Table:
    """Tenants, users, memberships and tokens; returns the tenants table (for the `default` row)."""
    tenants = _tenants_table()
    op.create_table(
        "users",
        sa.Column("user_id", sa.String(ID), primary_key=True),
        sa.Column("password_hash", sa.Text()),
        sa.Column("superuser", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_users"),
    )
    op.create_table(
        "memberships",
        sa.Column("tenant_id", sa.String(TENANT), nullable=False),
        sa.Column("user_id", sa.String(ID), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", name="pk_memberships"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"], name="fk_memberships_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name="fk_memberships_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_memberships_user_id", "memberships", ["user_id"])
    op.create_table(
        "api_tokens",
        sa.Column("token_id", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("name", sa.String(ID), nullable=False),
        sa.Column("user_id", sa.String(ID)),
        sa.Column("tenant_id", sa.String(TENANT)),
        sa.Column("run_id", sa.String(64)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime()),
        sa.Column("last_used_at", UTCDateTime()),
        sa.Column("revoked_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("token_id", name="pk_api_tokens"),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.create_index("ix_api_tokens_run_id", "api_tokens", ["run_id"])
    return tenants


def _tenants_table() -> sa.Table:
    return op.create_table(
        "tenants",
        sa.Column("tenant_id", sa.String(TENANT), nullable=False),
        sa.Column("display_name", sa.String(ID), nullable=False),
        sa.Column("dag_folders", sa.JSON(), nullable=False),
        sa.Column("max_running_tasks", sa.Integer()),
        sa.Column("max_active_runs", sa.Integer()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_tenants"),
    )


def _create_secrets_and_audit() -> None:
    op.create_table(
        "secrets",
        sa.Column("tenant_id", sa.String(TENANT), nullable=False),
        sa.Column("name", sa.String(ID), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "name", name="pk_secrets"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("tenant_id", sa.String(TENANT)),
        sa.Column("actor", sa.String(ID), nullable=False),
        sa.Column("action", sa.String(80), nullable=False),
        sa.Column("target", sa.String(ID * 2), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("origin", sa.String(ID), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_tenant_id_id", "audit_log", ["tenant_id", "id"])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def _tenant_owned_pools() -> None:
    """Pools are named within their tenant: the key becomes (tenant_id, name)."""
    with op.batch_alter_table("pools", recreate="always") as batch:
        batch.add_column(sa.Column("tenant_id", sa.String(TENANT), nullable=False, server_default="default"))
        batch.drop_constraint("pk_pools", type_="primary")
        batch.create_primary_key("pk_pools", ["tenant_id", "name"])


def _has_rows(table: str) -> bool:
    return op.get_bind().execute(sa.text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None  # noqa: S608
