"""Alembic environment: runs on the engine mcpd hands over in ``config.attributes``."""

from __future__ import annotations

from alembic import context

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(connection=connection, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
