"""audit delivery: an event id per record (idempotent ingest) and the policy revision

Revision ID: 0005_audit_delivery
Revises: 0003
Create Date: 2026-12-01 12:20:00

Existing rows keep NULL in both columns: they were recorded before records had ids, and a
unique index allows any number of NULLs (SQLite and PostgreSQL alike).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_audit_delivery"
down_revision = "0004_service_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("event_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("policy_revision", sa.String(length=16), nullable=True))
        batch.create_index("uq_audit_events_event_id", ["event_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_index("uq_audit_events_event_id")
        batch.drop_column("policy_revision")
        batch.drop_column("event_id")
