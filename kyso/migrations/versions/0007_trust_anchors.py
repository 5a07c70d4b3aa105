"""The trust store: the CAs Kyso trusts, named, with their roles (certs/trust_anchors.py).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trust_anchors",
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trusted_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("trust_anchors_pkey")),
        sa.UniqueConstraint("name", name=op.f("trust_anchors_name_key")),
    )


def downgrade() -> None:
    op.drop_table("trust_anchors")
