"""The exchange relay: credentials, messages, statuses, deliveries, push endpoints, audit log.

Revision ID: 0003
Revises: 0001

A branch of its own off 0001 (kyso.db upgrades to "heads"). The audit tables are append-only
in the database too: triggers refuse UPDATE and DELETE, so that nothing in Kyso can edit them
(an administrator with direct database access can, and ``kyso audit verify`` detects it).
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)
APPEND_ONLY = ("audit_log", "audit_checkpoints")


def upgrade() -> None:
    op.create_table(
        "exchange_credentials",
        sa.Column("key_id", sa.String(40), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("agency_code", sa.String(32), sa.ForeignKey("agencies.code"), index=True),
        sa.Column("label", sa.Text, nullable=False, server_default=""),
        sa.Column("secret_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("secret_sealed", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("revoked_at", TIME),
    )
    op.create_table(
        "exchange_nonces",
        sa.Column("key_id", sa.String(40), primary_key=True),
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("seen_at", TIME, nullable=False, index=True),
    )
    op.create_table(
        "exchange_messages",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "sender", sa.String(32), sa.ForeignKey("agencies.code"), nullable=False, index=True
        ),
        sa.Column("document_id", sa.Text, nullable=False),
        sa.Column("code", sa.Text, nullable=False, server_default=""),
        sa.Column("subject", sa.Text, nullable=False, server_default=""),
        sa.Column("doc_type", sa.Integer, nullable=False, server_default="0"),
        sa.Column("refers_to", sa.String(32), sa.ForeignKey("exchange_messages.id")),
        sa.Column("package_sha256", sa.String(64), nullable=False),
        sa.Column("package_size", sa.BigInteger, nullable=False),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("received_at", TIME, nullable=False),
        sa.Column("receipt_xml", sa.LargeBinary, nullable=False),
        sa.Column("receipt_sha256", sa.String(64), nullable=False),
        sa.Column("signer_serial", sa.String(64), nullable=False),
        sa.Column("recalled_at", TIME),
        sa.UniqueConstraint("sender", "package_sha256", name="uq_exchange_messages_digest"),
        sa.UniqueConstraint("sender", "idempotency_key", name="uq_exchange_messages_idempotency"),
    )
    op.create_table(
        "exchange_attachments",
        sa.Column(
            "message_id", sa.String(32), sa.ForeignKey("exchange_messages.id"), primary_key=True
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("content_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, index=True),
        sa.Column("size", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "exchange_recipients",
        sa.Column(
            "message_id", sa.String(32), sa.ForeignKey("exchange_messages.id"), primary_key=True
        ),
        sa.Column("agency", sa.String(32), sa.ForeignKey("agencies.code"), primary_key=True),
        sa.Column("state", sa.String(2)),
        sa.Column("answer", sa.String(2)),
        sa.Column("updated_at", TIME),
    )
    op.create_index("ix_exchange_recipients_agency", "exchange_recipients", ["agency"])
    op.create_table(
        "exchange_statuses",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column(
            "message_id", sa.String(32), sa.ForeignKey("exchange_messages.id"), nullable=False
        ),
        sa.Column("from_agency", sa.String(32), nullable=False),
        sa.Column("code", sa.String(2), nullable=False),
        sa.Column("xml", sa.LargeBinary, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("signed_at", TIME, nullable=False),
        sa.Column("received_at", TIME, nullable=False),
    )
    op.create_index("ix_exchange_statuses_message", "exchange_statuses", ["message_id"])
    op.create_table(
        "exchange_deliveries",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("agency", sa.String(32), sa.ForeignKey("agencies.code"), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column(
            "message_id", sa.String(32), sa.ForeignKey("exchange_messages.id"), nullable=False
        ),
        sa.Column("status_id", sa.BigInteger, sa.ForeignKey("exchange_statuses.id")),
        sa.Column("dedupe", sa.String(120), nullable=False, unique=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("since", TIME, nullable=False),
        sa.Column("acked_at", TIME),
        sa.Column("acked_via", sa.String(8)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TIME),
        sa.Column("lease_until", TIME),
        sa.Column("dead_at", TIME),
        sa.Column("last_error", sa.Text),
    )
    op.create_index("ix_exchange_deliveries_inbox", "exchange_deliveries", ["agency", "id"])
    op.create_index(
        "ix_exchange_deliveries_due", "exchange_deliveries", ["acked_at", "next_attempt_at"]
    )
    op.create_table(
        "exchange_push_endpoints",
        sa.Column("agency", sa.String(32), sa.ForeignKey("agencies.code"), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("event", sa.String(32), nullable=False, index=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False, index=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64}])
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("prev_imprint", sa.String(64), nullable=False),
        sa.Column("imprint", sa.String(64), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("token", sa.LargeBinary, nullable=False),
    )
    _append_only_triggers()


def _append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in APPEND_ONLY:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION kyso_append_only() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END; $$ LANGUAGE plpgsql"
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION kyso_append_only()"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS kyso_append_only()")
    for table in (
        "audit_checkpoints",
        "audit_head",
        "audit_log",
        "exchange_push_endpoints",
        "exchange_deliveries",
        "exchange_statuses",
        "exchange_recipients",
        "exchange_attachments",
        "exchange_messages",
        "exchange_nonces",
        "exchange_credentials",
    ):
        op.drop_table(table)
