"""The relay's tables and its database (SQLAlchemy Core; SQLite and PostgreSQL alike).

The tables are on Kyso's one :data:`directory.db.metadata` (the agencies they refer to are in
:mod:`directory.store`) and are created by the Alembic migrations (``0003``; ``0009`` the
held packages). Their repositories, one per use case, are kinds of :class:`ExchangeStore`:
:mod:`exchange.message_store` (messages, attachments, recipients), :mod:`exchange.status_store`,
:mod:`exchange.mailbox_store` (deliveries, push endpoints) and :mod:`exchange.pending_store`
(packages held in "verification pending").

Every write of the relay goes through :meth:`ExchangeStore.write`, which takes the one write
lock (``BEGIN IMMEDIATE`` on SQLite, the audit head row ``FOR UPDATE`` on PostgreSQL) *before*
any row is inserted: transactions then commit in the order their sequence numbers were drawn,
so an inbox cursor never skips a delivery that commits late, and the audit chain has one
writer at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa

from directory.db import metadata

# The relay's modules take the directory's repository and table from here too.
from directory.store import AgencyStore as AgencyStore
from directory.store import agencies as agencies

from .writegate import write_gate

# An auto-incrementing 64-bit key; SQLite only auto-increments INTEGER PRIMARY KEY (the rowid).
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)

nonces = sa.Table(
    "exchange_nonces",
    metadata,
    sa.Column("key_id", sa.String(40), primary_key=True),
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("seen_at", UTC_TIME, nullable=False, index=True),
)

messages = sa.Table(
    "exchange_messages",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("sender", sa.String(32), sa.ForeignKey("agencies.code"), nullable=False, index=True),
    sa.Column("document_id", sa.Text, nullable=False),
    sa.Column("code", sa.Text, nullable=False, server_default=""),
    sa.Column("subject", sa.Text, nullable=False, server_default=""),
    sa.Column("doc_type", sa.Integer, nullable=False, server_default="0"),
    sa.Column("refers_to", sa.String(32), sa.ForeignKey("exchange_messages.id")),
    sa.Column("package_sha256", sa.String(64), nullable=False),
    sa.Column("package_size", sa.BigInteger, nullable=False),
    sa.Column("transport", sa.String(16), nullable=False),
    sa.Column("idempotency_key", sa.String(200)),
    sa.Column("received_at", UTC_TIME, nullable=False),
    sa.Column("receipt_xml", sa.LargeBinary, nullable=False),
    sa.Column("receipt_sha256", sa.String(64), nullable=False),
    sa.Column("signer_serial", sa.String(64), nullable=False),
    sa.Column("recalled_at", UTC_TIME),
    # "verified" (NULL in rows older than 0009), "pending" or "refused": see exchange/pending.py.
    sa.Column("verification", sa.String(16)),
    sa.UniqueConstraint("sender", "package_sha256", name="uq_exchange_messages_digest"),
    sa.UniqueConstraint("sender", "idempotency_key", name="uq_exchange_messages_idempotency"),
)

attachments = sa.Table(
    "exchange_attachments",
    metadata,
    sa.Column("message_id", sa.String(32), sa.ForeignKey("exchange_messages.id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("content_id", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("content_type", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False, index=True),
    sa.Column("size", sa.BigInteger, nullable=False),
)

# A package held in "verification pending": its recipients are owed nothing until it passes.
pending_verifications = sa.Table(
    "exchange_pending_verifications",
    metadata,
    sa.Column("message_id", sa.String(32), sa.ForeignKey("exchange_messages.id"), primary_key=True),
    sa.Column("recipients", sa.Text, nullable=False),  # comma-separated agency codes
    sa.Column("since", UTC_TIME, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTC_TIME, nullable=False, index=True),
    sa.Column("last_error", sa.Text),
)

recipients = sa.Table(
    "exchange_recipients",
    metadata,
    sa.Column("message_id", sa.String(32), sa.ForeignKey("exchange_messages.id"), primary_key=True),
    sa.Column("agency", sa.String(32), sa.ForeignKey("agencies.code"), primary_key=True),
    sa.Column("state", sa.String(2)),
    sa.Column("answer", sa.String(2)),
    sa.Column("updated_at", UTC_TIME),
    sa.Index("ix_exchange_recipients_agency", "agency"),
)

statuses = sa.Table(
    "exchange_statuses",
    metadata,
    sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(32), sa.ForeignKey("exchange_messages.id"), nullable=False),
    sa.Column("from_agency", sa.String(32), nullable=False),
    sa.Column("code", sa.String(2), nullable=False),
    sa.Column("xml", sa.LargeBinary, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("signed_at", UTC_TIME, nullable=False),
    sa.Column("received_at", UTC_TIME, nullable=False),
    sa.Index("ix_exchange_statuses_message", "message_id"),
)

deliveries = sa.Table(
    "exchange_deliveries",
    metadata,
    sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
    sa.Column("agency", sa.String(32), sa.ForeignKey("agencies.code"), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("message_id", sa.String(32), sa.ForeignKey("exchange_messages.id"), nullable=False),
    sa.Column("status_id", sa.BigInteger, sa.ForeignKey("exchange_statuses.id")),
    sa.Column("dedupe", sa.String(120), nullable=False, unique=True),
    sa.Column("created_at", UTC_TIME, nullable=False),
    sa.Column("since", UTC_TIME, nullable=False),  # start of the current delivery effort
    sa.Column("acked_at", UTC_TIME),
    sa.Column("acked_via", sa.String(8)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTC_TIME),
    sa.Column("lease_until", UTC_TIME),
    sa.Column("dead_at", UTC_TIME),
    sa.Column("last_error", sa.Text),
    sa.Index("ix_exchange_deliveries_inbox", "agency", "id"),
    sa.Index("ix_exchange_deliveries_due", "acked_at", "next_attempt_at"),
)

push_endpoints = sa.Table(
    "exchange_push_endpoints",
    metadata,
    sa.Column("agency", sa.String(32), sa.ForeignKey("agencies.code"), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("created_at", UTC_TIME, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("event", sa.String(32), nullable=False, index=True),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(64), nullable=False, index=True),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("prev_imprint", sa.String(64), nullable=False),
    sa.Column("imprint", sa.String(64), nullable=False),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("token", sa.LargeBinary, nullable=False),
)

GENESIS_HASH = "0" * 64
HEAD_ID = 1


# --- The relay's database ----------------------------------------------------------------------


class ExchangeStore:
    """The relay's database: its engine and its one serialized write transaction.

    The repositories of the use cases (:mod:`exchange.message_store`,
    :mod:`exchange.status_store`, :mod:`exchange.mailbox_store`) are kinds of it, so that a
    use case opens :meth:`write` on whichever it holds and every write takes the same lock.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"

    @contextlib.contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A write transaction holding the relay's one write lock (see the module doc)."""
        with write_gate(self.engine), self.engine.connect() as conn:
            if self.sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.execute(
                    sa.select(audit_head.c.seq).where(audit_head.c.id == HEAD_ID).with_for_update()
                )
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
