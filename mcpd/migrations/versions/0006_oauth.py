"""OAuth 2.1 authorization server: registered clients, grants, codes and tokens

Revision ID: 0006_oauth
Revises: 0003
Create Date: 2026-12-01 12:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_oauth"
down_revision = "0005_audit_delivery"
branch_labels = None
depends_on = None

_NOW = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("client_name", sa.String(length=255), nullable=False),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("client_metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", _NOW, nullable=False),
        sa.Column("last_used_at", _NOW, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id"),
    )
    op.create_table(
        "oauth_grants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("resource", sa.String(length=2048), nullable=False),
        sa.Column("scope", sa.String(length=255), nullable=False),
        sa.Column("created_at", _NOW, nullable=False),
        sa.ForeignKeyConstraint(["token_id"], ["mcp_tokens.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["client_id"], ["oauth_clients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_id"),
    )
    with op.batch_alter_table("oauth_grants") as batch:
        batch.create_index(batch.f("ix_oauth_grants_client_id"), ["client_id"], unique=False)
        batch.create_index(batch.f("ix_oauth_grants_user_name"), ["user_name"], unique=False)
    op.create_table(
        "oauth_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("code_sha", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("role_bindings", sa.JSON(), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2048), nullable=False),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("resource", sa.String(length=2048), nullable=False),
        sa.Column("scope", sa.String(length=255), nullable=False),
        sa.Column("expires_at", _NOW, nullable=False),
        sa.Column("used_at", _NOW, nullable=True),
        sa.Column("grant_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["oauth_clients.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["grant_id"], ["oauth_grants.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_sha"),
    )
    with op.batch_alter_table("oauth_codes") as batch:
        batch.create_index(batch.f("ix_oauth_codes_client_id"), ["client_id"], unique=False)
    op.create_table(
        "oauth_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_sha", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=False),
        sa.Column("created_at", _NOW, nullable=False),
        sa.Column("expires_at", _NOW, nullable=False),
        sa.Column("used_at", _NOW, nullable=True),
        sa.ForeignKeyConstraint(["grant_id"], ["oauth_grants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha"),
    )
    with op.batch_alter_table("oauth_tokens") as batch:
        batch.create_index(batch.f("ix_oauth_tokens_grant_id"), ["grant_id"], unique=False)


def downgrade() -> None:
    op.drop_table("oauth_tokens")
    op.drop_table("oauth_codes")
    op.drop_table("oauth_grants")
    op.drop_table("oauth_clients")
