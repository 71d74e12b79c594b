"""project proxy options (the proxy model's settings: page size, summarizer endpoint)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 18:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(
            sa.Column("proxy_options", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("proxy_options")
