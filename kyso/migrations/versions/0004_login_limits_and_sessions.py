"""Login limits per username and per address; web sessions the server can end.

Revision ID: 0004
Revises: 0002

Failed logins were counted per (username, address) pair under the key ``name|address``; they
are now counted per username (``user:name``) and per address (``addr:address``), and a
username's run of failures ends a while after its last one. The old counters are dropped: they
lock nothing the new ones would (at worst a run starts again), and no key of theirs would
ever be read again.

Every account gets a session generation (0 for the existing ones, which keep all their data)
and logged-out session ids are kept in ``ended_sessions`` until their cookies expire. Cookies
made before this revision carry no generation: their users log in once more.
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
    op.add_column(
        "accounts",
        sa.Column("session_generation", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "ended_sessions",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("expires_at", TIME, nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("ended_sessions")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("session_generation")
    op.execute(sa.text("DELETE FROM login_failures"))
    with op.batch_alter_table("login_failures") as batch:
        batch.drop_column("last_failure_at")
