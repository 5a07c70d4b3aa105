"""One schema: joins the two lines of migrations and names SQLite's unique constraints.

Revision ID: 0005
Revises: 0003, 0004

Until here each part of Kyso kept its own branch off 0001 (the relay 0003, the accounts 0004);
from here on the tables are defined once (``directory.db.metadata``) and each new migration is
generated from them (``kyso db revision``), on one line.

Their naming convention calls a unique constraint ``<table>_<columns>_key``, the name
PostgreSQL already gave the ones created unnamed by 0002 and 0003: on PostgreSQL nothing
changes. SQLite kept them without a name, which no later migration could drop or alter; each
table holding one is rebuilt with the names (the convention is copied here, as it stood, so
that this migration keeps doing what it did when the tables change).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = ("0003", "0004")
branch_labels = None
depends_on = None

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "pk": "%(table_name)s_pkey",
    "ck": "%(table_name)s_%(constraint_name)s_check",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in _tables_with_unnamed_unique_constraints():
        # The copy reflects the table with the convention, which names what has no name.
        with op.batch_alter_table(table, recreate="always", naming_convention=NAMING_CONVENTION):
            pass


def _tables_with_unnamed_unique_constraints() -> list[str]:
    inspector = sa.inspect(op.get_bind())
    return [
        table
        for table in sorted(inspector.get_table_names())
        if any(uq["name"] is None for uq in inspector.get_unique_constraints(table))
    ]


def downgrade() -> None:
    pass  # the names do no harm to 0003 and 0004, which never refer to them
