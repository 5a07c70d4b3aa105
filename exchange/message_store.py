"""Messages, their attachments and recipients: the records and their repository.

What the intake writes (:meth:`MessageStore.insert_message`, in one transaction with the
message's deliveries), what a party reads, and the recipients' states the status lifecycle
moves. Writes take a connection of :meth:`~exchange.store.ExchangeStore.write`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from certs.clock import as_utc as utc

from . import mailbox_store
from .store import ExchangeStore, attachments, messages, pending_verifications, recipients

# Where a message's verification stands (exchange_messages.verification; NULL: verified).
VERIFIED, PENDING, REFUSED = "verified", "pending", "refused"


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
    verification: str = VERIFIED  # or PENDING (held, its recipients see nothing), REFUSED

    @property
    def verified(self) -> bool:
        return self.verification == VERIFIED


@dataclass(frozen=True)
class NewMessage:
    """Everything one accepted package writes, in one transaction."""

    message: MessageRecord
    recipients: tuple[str, ...]
    attachments: tuple[AttachmentRecord, ...]


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
        verification=row.verification or VERIFIED,
    )


class MessageStore(ExchangeStore):
    """Messages, attachments and recipients."""

    # -- the intake --

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
        """Insert the message, its attachments, recipients and deliveries; the delivery ids.

        A message in verification PENDING gets no recipients nor deliveries but a row of
        ``exchange_pending_verifications``, due at once; :meth:`deliver` adds them later.
        """
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
        if new.message.verification == PENDING:
            conn.execute(
                pending_verifications.insert().values(
                    message_id=message_id,
                    recipients=",".join(new.recipients),
                    since=received_at,
                    attempts=0,
                    next_attempt_at=received_at,
                )
            )
            return []
        return self.deliver(conn, message_id, new.recipients, received_at)

    def deliver(
        self, conn: sa.Connection, message_id: str, agencies: tuple[str, ...], now: dt.datetime
    ) -> list[int]:
        """Make the message its recipients': their rows and deliveries; the delivery ids."""
        conn.execute(
            recipients.insert(),
            [{"message_id": message_id, "agency": agency} for agency in agencies],
        )
        return mailbox_store.add_deliveries(conn, agencies, "message", message_id, None, now)

    # -- reading --

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

    # -- the lifecycle --

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

    def set_verification(
        self, conn: sa.Connection, message_id: str, verification: str, signer_serial: str
    ) -> None:
        conn.execute(
            messages.update()
            .where(messages.c.id == message_id)
            .values(verification=verification, signer_serial=signer_serial)
        )

    def mark_recalled(self, conn: sa.Connection, message_id: str, now: dt.datetime) -> None:
        conn.execute(messages.update().where(messages.c.id == message_id).values(recalled_at=now))

    def recalled_at(self, conn: sa.Connection, message_id: str) -> dt.datetime | None:
        value = conn.execute(
            sa.select(messages.c.recalled_at).where(messages.c.id == message_id)
        ).scalar()
        return utc(value)
