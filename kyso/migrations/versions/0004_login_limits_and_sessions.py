"""Login limits per username and per address.

Revision ID: 0004
Revises: 0002

Failed logins were counted per (username, address) pair under the key ``name|address``; they
are now counted per username (``user:name``) and per address (``addr:address``), and a
username's run of failures ends a while after its last one. The old counters are dropped: they
lock nothing the new ones would (at worst a run starts again), and no key of theirs would
ever be read again. Accounts are untouched.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.execute(sa.text("DELETE FROM login_failures"))
    op.add_column("login_failures", sa.Column("last_failure_at", TIME))


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM login_failures"))
    with op.batch_alter_table("login_failures") as batch:
        batch.drop_column("last_failure_at")
