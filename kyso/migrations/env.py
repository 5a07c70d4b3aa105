"""Alembic environment: migrations run on a connection handed over by kyso.db.upgrade."""

from alembic import context

from kyso.db import METADATA

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=METADATA, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
