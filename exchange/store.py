"""The relay's tables and repositories (SQLAlchemy Core; SQLite and PostgreSQL alike).

The tables are on Kyso's one :data:`directory.db.metadata` (the agencies they refer to are in
:mod:`directory.store`) and are created by the Alembic migrations (``0003``). Every write of
the relay goes through :meth:`ExchangeStore.write`, which takes the one write lock (``BEGIN
IMMEDIATE`` on SQLite, the audit head row ``FOR UPDATE`` on PostgreSQL) *before* any row is
inserted: transactions then commit in the order their sequence numbers were drawn, so an
inbox cursor never skips a delivery that commits late, and the audit chain has one writer at
a time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from certs.clock import as_utc as utc
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


# --- The relay's repository ------------------------------------------------------------------


@dataclass(frozen=True)
class AttachmentRecord:
    position: int
    content_id: str
    name: str
    content_type: str
    sha256: str
    size: int


@dataclass(frozen=True)
class RecipientRecord:
    agency: str
    state: str | None  # the last lifecycle code (01…06, 02)
    answer: str | None  # 15 or 16, the answer to a recall or an update
    updated_at: dt.datetime | None


@dataclass(frozen=True)
class MessageRecord:
    id: str
    sender: str
    document_id: str
    code: str
    subject: str
    doc_type: int
    refers_to: str | None
    package_sha256: str
    package_size: int
    transport: str
    idempotency_key: str | None
    received_at: dt.datetime
    receipt_xml: bytes
    receipt_sha256: str
    signer_serial: str
    recalled_at: dt.datetime | None


@dataclass(frozen=True)
class StatusRecord:
    id: int
    message_id: str
    from_agency: str
    code: str
    xml: bytes
    sha256: str
    signed_at: dt.datetime
    received_at: dt.datetime


@dataclass(frozen=True)
class DeliveryRecord:
    id: int
    agency: str
    kind: str  # "message" or "status"
    message_id: str
    status_id: int | None
    created_at: dt.datetime
    since: dt.datetime
    acked_at: dt.datetime | None
    acked_via: str | None
    attempts: int
    next_attempt_at: dt.datetime | None
    dead_at: dt.datetime | None
    last_error: str | None


def _message(row: Any) -> MessageRecord:
    return MessageRecord(
        id=row.id,
        sender=row.sender,
        document_id=row.document_id,
        code=row.code,
        subject=row.subject,
        doc_type=int(row.doc_type),
        refers_to=row.refers_to,
        package_sha256=row.package_sha256,
        package_size=int(row.package_size),
        transport=row.transport,
        idempotency_key=row.idempotency_key,
        received_at=utc(row.received_at),  # type: ignore[arg-type]
        receipt_xml=bytes(row.receipt_xml),
        receipt_sha256=row.receipt_sha256,
        signer_serial=row.signer_serial,
        recalled_at=utc(row.recalled_at),
    )


def _status(row: Any) -> StatusRecord:
    return StatusRecord(
        id=int(row.id),
        message_id=row.message_id,
        from_agency=row.from_agency,
        code=row.code,
        xml=bytes(row.xml),
        sha256=row.sha256,
        signed_at=utc(row.signed_at),  # type: ignore[arg-type]
        received_at=utc(row.received_at),  # type: ignore[arg-type]
    )


def _delivery(row: Any) -> DeliveryRecord:
    return DeliveryRecord(
        id=int(row.id),
        agency=row.agency,
        kind=row.kind,
        message_id=row.message_id,
        status_id=int(row.status_id) if row.status_id is not None else None,
        created_at=utc(row.created_at),  # type: ignore[arg-type]
        since=utc(row.since),  # type: ignore[arg-type]
        acked_at=utc(row.acked_at),
        acked_via=row.acked_via,
        attempts=int(row.attempts or 0),
        next_attempt_at=utc(row.next_attempt_at),
        dead_at=utc(row.dead_at),
        last_error=row.last_error,
    )


@dataclass(frozen=True)
class NewMessage:
    """Everything one accepted package writes, in one transaction."""

    message: MessageRecord
    recipients: tuple[str, ...]
    attachments: tuple[AttachmentRecord, ...]


class ExchangeStore:
    """Messages, recipients, statuses, deliveries and push endpoints."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"

    # -- transactions --

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

    # -- messages --

    def find_message(
        self, sender: str, package_sha256: str, idempotency_key: str | None
    ) -> MessageRecord | None:
        """The message this sender already sent with this key, else with these bytes."""
        with self.engine.connect() as conn:
            if idempotency_key:
                row = conn.execute(
                    messages.select()
                    .where(messages.c.sender == sender)
                    .where(messages.c.idempotency_key == idempotency_key)
                ).first()
                if row is not None:
                    return _message(row)
            row = conn.execute(
                messages.select()
                .where(messages.c.sender == sender)
                .where(messages.c.package_sha256 == package_sha256)
            ).first()
        return _message(row) if row is not None else None

    def find_document(self, sender: str, document_id: str) -> MessageRecord | None:
        """The latest message ``sender`` sent with this DocumentId."""
        with self.engine.connect() as conn:
            row = conn.execute(
                messages.select()
                .where(messages.c.sender == sender)
                .where(messages.c.document_id == document_id)
                .order_by(messages.c.received_at.desc())
                .limit(1)
            ).first()
        return _message(row) if row is not None else None

    def insert_message(self, conn: sa.Connection, new: NewMessage) -> list[int]:
        """Insert the message, its attachments, recipients and deliveries; the delivery ids."""
        record = dataclasses.asdict(new.message)
        del record["recalled_at"]  # a new message is not recalled
        conn.execute(messages.insert().values(**record))
        message_id, received_at = new.message.id, new.message.received_at
        if new.attachments:
            conn.execute(
                attachments.insert(),
                [
                    {
                        "message_id": message_id,
                        "position": a.position,
                        "content_id": a.content_id,
                        "name": a.name,
                        "content_type": a.content_type,
                        "sha256": a.sha256,
                        "size": a.size,
                    }
                    for a in new.attachments
                ],
            )
        conn.execute(
            recipients.insert(),
            [{"message_id": message_id, "agency": agency} for agency in new.recipients],
        )
        return self.add_deliveries(conn, new.recipients, "message", message_id, None, received_at)

    def message(self, message_id: str) -> MessageRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(messages.select().where(messages.c.id == message_id)).first()
        return _message(row) if row is not None else None

    def attachments(self, message_id: str) -> list[AttachmentRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                attachments.select()
                .where(attachments.c.message_id == message_id)
                .order_by(attachments.c.position)
            ).all()
        return [
            AttachmentRecord(r.position, r.content_id, r.name, r.content_type, r.sha256, r.size)
            for r in rows
        ]

    def recipients(
        self, message_id: str, conn: sa.Connection | None = None
    ) -> list[RecipientRecord]:
        query = (
            recipients.select()
            .where(recipients.c.message_id == message_id)
            .order_by(recipients.c.agency)
        )
        with contextlib.ExitStack() as stack:
            if conn is None:
                conn = stack.enter_context(self.engine.connect())
            rows = conn.execute(query).all()
        return [RecipientRecord(r.agency, r.state, r.answer, utc(r.updated_at)) for r in rows]

    def set_recipient(
        self,
        conn: sa.Connection,
        message_id: str,
        agency: str,
        now: dt.datetime,
        *,
        state: str | None = None,
        answer: str | None = None,
    ) -> None:
        values: dict[str, Any] = {"updated_at": now}
        if state is not None:
            values["state"] = state
        if answer is not None:
            values["answer"] = answer
        conn.execute(
            recipients.update()
            .where(recipients.c.message_id == message_id)
            .where(recipients.c.agency == agency)
            .values(**values)
        )

    def mark_recalled(self, conn: sa.Connection, message_id: str, now: dt.datetime) -> None:
        conn.execute(messages.update().where(messages.c.id == message_id).values(recalled_at=now))

    def recalled_at(self, conn: sa.Connection, message_id: str) -> dt.datetime | None:
        value = conn.execute(
            sa.select(messages.c.recalled_at).where(messages.c.id == message_id)
        ).scalar()
        return utc(value)

    def sent_by(
        self, sender: str, limit: int = 100, before: dt.datetime | None = None
    ) -> list[MessageRecord]:
        query = messages.select().where(messages.c.sender == sender)
        if before is not None:
            query = query.where(messages.c.received_at < before)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(messages.c.received_at.desc()).limit(limit)).all()
        return [_message(r) for r in rows]

    def received_by(self, agency: str, limit: int = 100) -> list[MessageRecord]:
        query = (
            sa.select(messages)
            .join(recipients, recipients.c.message_id == messages.c.id)
            .where(recipients.c.agency == agency)
            .order_by(messages.c.received_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_message(r) for r in conn.execute(query).all()]

    def all_messages(self) -> list[MessageRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(messages.select().order_by(messages.c.received_at)).all()
        return [_message(r) for r in rows]

    # -- statuses --

    def status_by_sha(self, sha256: str) -> StatusRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(statuses.select().where(statuses.c.sha256 == sha256)).first()
        return _status(row) if row is not None else None

    def insert_status(
        self,
        conn: sa.Connection,
        message_id: str,
        from_agency: str,
        code: str,
        xml: bytes,
        sha256: str,
        signed_at: dt.datetime,
        received_at: dt.datetime,
    ) -> int:
        result = conn.execute(
            statuses.insert()
            .values(
                message_id=message_id,
                from_agency=from_agency,
                code=code,
                xml=xml,
                sha256=sha256,
                signed_at=signed_at,
                received_at=received_at,
            )
            .returning(statuses.c.id)
        )
        return int(result.scalar_one())

    def statuses(self, message_id: str) -> list[StatusRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                statuses.select().where(statuses.c.message_id == message_id).order_by(statuses.c.id)
            ).all()
        return [_status(r) for r in rows]

    def status(self, status_id: int) -> StatusRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(statuses.select().where(statuses.c.id == status_id)).first()
        return _status(row) if row is not None else None

    # -- deliveries (inbox and push) --

    def add_deliveries(
        self,
        conn: sa.Connection,
        agencies_: Sequence[str],
        kind: str,
        message_id: str,
        status_id: int | None,
        now: dt.datetime,
    ) -> list[int]:
        ids = []
        for agency in agencies_:
            dedupe = f"{kind}:{message_id}:{status_id or 0}:{agency}"
            result = conn.execute(
                deliveries.insert()
                .values(
                    agency=agency,
                    kind=kind,
                    message_id=message_id,
                    status_id=status_id,
                    dedupe=dedupe,
                    created_at=now,
                    since=now,
                    attempts=0,
                    next_attempt_at=now,
                )
                .returning(deliveries.c.id)
            )
            ids.append(int(result.scalar_one()))
        return ids

    def inbox(self, agency: str, after: int, limit: int) -> list[DeliveryRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                deliveries.select()
                .where(deliveries.c.agency == agency)
                .where(deliveries.c.id > after)
                .where(deliveries.c.acked_at.is_(None))
                .order_by(deliveries.c.id)
                .limit(limit)
            ).all()
        return [_delivery(r) for r in rows]

    def delivery(
        self, delivery_id: int, conn: sa.Connection | None = None
    ) -> DeliveryRecord | None:
        with contextlib.ExitStack() as stack:
            if conn is None:
                conn = stack.enter_context(self.engine.connect())
            row = conn.execute(deliveries.select().where(deliveries.c.id == delivery_id)).first()
        return _delivery(row) if row is not None else None

    def deliveries_of(self, message_id: str) -> list[DeliveryRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                deliveries.select()
                .where(deliveries.c.message_id == message_id)
                .order_by(deliveries.c.id)
            ).all()
        return [_delivery(r) for r in rows]

    def all_deliveries(self) -> list[DeliveryRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(deliveries.select().order_by(deliveries.c.id)).all()
        return [_delivery(r) for r in rows]

    def mark_acked(self, conn: sa.Connection, delivery_id: int, now: dt.datetime, via: str) -> bool:
        """Acknowledge once; False if it already was."""
        result = conn.execute(
            deliveries.update()
            .where(deliveries.c.id == delivery_id)
            .where(deliveries.c.acked_at.is_(None))
            .values(acked_at=now, acked_via=via, lease_until=None)
        )
        return bool(result.rowcount)

    def due_pushes(self, now: dt.datetime, limit: int) -> list[tuple[DeliveryRecord, str]]:
        """Unacknowledged, living deliveries to agencies with a push endpoint, due now."""
        query = (
            sa.select(deliveries, push_endpoints.c.url)
            .join(push_endpoints, push_endpoints.c.agency == deliveries.c.agency)
            .where(deliveries.c.acked_at.is_(None))
            .where(deliveries.c.dead_at.is_(None))
            .where(deliveries.c.next_attempt_at <= now)
            .where(sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now))
            .order_by(deliveries.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [(_delivery(r), r.url) for r in rows]

    def lease(self, delivery_id: int, now: dt.datetime, until: dt.datetime) -> bool:
        """Claim a push attempt (one process, one worker at a time)."""
        with self.engine.begin() as conn:
            result = conn.execute(
                deliveries.update()
                .where(deliveries.c.id == delivery_id)
                .where(deliveries.c.acked_at.is_(None))
                .where(sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now))
                .values(lease_until=until)
            )
        return bool(result.rowcount)

    def schedule_retry(
        self, delivery_id: int, attempts: int, next_at: dt.datetime, error: str
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id == delivery_id)
                .values(
                    attempts=attempts, next_attempt_at=next_at, lease_until=None, last_error=error
                )
            )

    def mark_dead(
        self, conn: sa.Connection, delivery_id: int, now: dt.datetime, attempts: int, error: str
    ) -> None:
        conn.execute(
            deliveries.update()
            .where(deliveries.c.id == delivery_id)
            .values(dead_at=now, attempts=attempts, lease_until=None, last_error=error)
        )

    def dead_letters(self) -> list[DeliveryRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                deliveries.select()
                .where(deliveries.c.dead_at.is_not(None))
                .where(deliveries.c.acked_at.is_(None))
                .order_by(deliveries.c.id)
            ).all()
        return [_delivery(r) for r in rows]

    def revive(self, conn: sa.Connection, delivery_id: int, now: dt.datetime) -> bool:
        result = conn.execute(
            deliveries.update()
            .where(deliveries.c.id == delivery_id)
            .where(deliveries.c.dead_at.is_not(None))
            .values(dead_at=None, attempts=0, next_attempt_at=now, since=now, last_error=None)
        )
        return bool(result.rowcount)

    # -- push endpoints --

    def push_endpoint(self, agency: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(push_endpoints.c.url).where(push_endpoints.c.agency == agency)
            ).scalar()
        return str(value) if value is not None else None

    def set_push_endpoint(
        self, conn: sa.Connection, agency: str, url: str | None, now: dt.datetime
    ) -> None:
        conn.execute(push_endpoints.delete().where(push_endpoints.c.agency == agency))
        if url is not None:
            conn.execute(push_endpoints.insert().values(agency=agency, url=url, created_at=now))
