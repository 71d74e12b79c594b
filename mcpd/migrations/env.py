"""Alembic environment: runs on the engine mcpd hands over in ``config.attributes``."""

from __future__ import annotations

from alembic import context

config = context.config
engine = config.attributes["engine"]
target_metadata = config.attributes.get("target_metadata")  # only to autogenerate

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
