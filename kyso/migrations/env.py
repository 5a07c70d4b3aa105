"""Alembic environment: migrations run on a connection handed over by kyso.db.

Only autogenerate (``kyso db revision``) is given the tables as its target. Alembic would also
give their naming convention to every table an upgrade creates, so the migrations written before
the convention existed would name constraints they left unnamed (on SQLite): an empty database
would then differ from one upgraded over the years. Generated migrations spell every name.
"""

from alembic import context

from kyso.db import COMPARE_OPTIONS

config = context.config
context.configure(
    connection=config.attributes["connection"],
    target_metadata=config.attributes.get("autogenerate_from"),
    render_as_batch=True,
    **COMPARE_OPTIONS,
)
with context.begin_transaction():
    context.run_migrations()
