"""Alembic environment: runs on the engine mcpd hands over in ``config.attributes``."""

from __future__ import annotations

from alembic import context

config = context.config
engine = config.attributes["engine"]
target_metadata = config.attributes.get("target_metadata")  # only to autogenerate

with engine.begin() as connection:
    if connection.dialect.name == "postgresql":
        # Several replicas may start at once on one database: one migrates, the others wait
        # here (the lock ends with this transaction), then find nothing left to do.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(8420001)")
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
