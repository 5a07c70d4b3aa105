"""Verification pending: a package whose signer's revocation status could not be fetched is
held (exchange_pending_verifications) and verified again later; exchange_messages.verification
says where it stands (NULL: verified at intake, as every older row was).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchange_pending_verifications",
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["exchange_messages.id"],
            name=op.f("exchange_pending_verifications_message_id_fkey"),
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("exchange_pending_verifications_pkey")),
    )
    with op.batch_alter_table("exchange_pending_verifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exchange_pending_verifications_next_attempt_at"),
            ["next_attempt_at"],
            unique=False,
        )

    with op.batch_alter_table("exchange_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verification", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("exchange_messages", schema=None) as batch_op:
        batch_op.drop_column("verification")

    with op.batch_alter_table("exchange_pending_verifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_pending_verifications_next_attempt_at"))

    op.drop_table("exchange_pending_verifications")
