"""PKI records and the agency directory.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pki_certificates",
        sa.Column("serial", sa.String(64), primary_key=True),
        sa.Column("ca", sa.String(64), nullable=False, index=True),
        sa.Column("profile", sa.String(16), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("common_name", sa.Text, nullable=False),
        sa.Column("agency_code", sa.String(32), index=True),
        sa.Column("key_ref", sa.Text),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("der", sa.LargeBinary, nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("revocation_reason", sa.String(32)),
    )
    op.create_table(
        "pki_counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "agencies",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("level", sa.String(32), nullable=False),
        sa.Column("parent", sa.String(32), sa.ForeignKey("agencies.code"), index=True),
        sa.Column("province", sa.Text, nullable=False, server_default=""),
        sa.Column("email", sa.Text, nullable=False, server_default=""),
        sa.Column("address", sa.Text, nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("agencies")
    op.drop_table("pki_counters")
    op.drop_table("pki_certificates")
