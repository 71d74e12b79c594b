"""policy rules: casbin-sqlalchemy-adapter's casbin_rule table, plus origin and indexes

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "casbin_rule",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ptype", sa.String(255), nullable=False),
        sa.Column("v0", sa.String(255)),
        sa.Column("v1", sa.String(255)),
        sa.Column("v2", sa.String(255)),
        sa.Column("v3", sa.String(255)),
        sa.Column("v4", sa.String(255)),
        sa.Column("v5", sa.String(255)),
        sa.Column("origin", sa.String(255)),
    )
    op.create_index("ix_casbin_rule_ptype_v0", "casbin_rule", ["ptype", "v0"])
    op.create_index("ix_casbin_rule_origin", "casbin_rule", ["origin"])


def downgrade() -> None:
    op.drop_table("casbin_rule")
