"""Reading messages: what a party may see of a message, and the lists of an agency's mail.

A message exists only for its sender, its recipients and those who read everything
(administrators, auditors); for anyone else it is unknown (404), like one that never was. A
recipient sees its own line of the recipients and the statuses between it and the sender,
not the receipt, which belongs to the sender.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .auth import Principal
from .blobs import BlobStore
from .errors import UnknownMessage
from .mailbox import INBOX_LIMIT
from .message_store import AttachmentRecord, MessageRecord, MessageStore, RecipientRecord
from .status_store import StatusRecord, StatusStore
from .wire import reassemble

MAX_MESSAGE_ID = 64


class Part(StrEnum):
    """The caller's part in a message."""

    SENDER = "sender"
    RECIPIENT = "recipient"
    READER = "reader"  # an administrator or auditor


@dataclass(frozen=True)
class MessageView:
    """A message as one party sees it."""

    message: MessageRecord
    part: Part
    recipients: list[RecipientRecord]  # a recipient sees only itself
    attachments: list[AttachmentRecord]


@dataclass(frozen=True)
class Sent:
    """A message of the outbox, with every recipient's state."""

    message: MessageRecord
    recipients: list[RecipientRecord]


@dataclass(frozen=True)
class Received:
    """A message the agency received, with its own state."""

    message: MessageRecord
    own: RecipientRecord


def bounded(limit: int) -> int:
    """A list's length as asked, within 1 and :data:`INBOX_LIMIT`."""
    return min(max(limit, 1), INBOX_LIMIT)


class Messages:
    """A party's read access to messages, their packages, attachments and statuses."""

    def __init__(self, store: MessageStore, statuses: StatusStore, blobs: BlobStore) -> None:
        self.store = store
        self.statuses = statuses
        self.blobs = blobs

    def access(self, principal: Principal, message_id: str) -> tuple[MessageRecord, Part]:
        """The message and the caller's part in it; :class:`UnknownMessage` if it has none."""
        message = self.store.message(message_id) if len(message_id) <= MAX_MESSAGE_ID else None
        if message is not None:
            if principal.reads_everything:
                return message, Part.READER
            if principal.agency == message.sender:
                return message, Part.SENDER
            recipients = {r.agency for r in self.store.recipients(message_id)}
            if principal.agency in recipients:
                return message, Part.RECIPIENT
        raise UnknownMessage(f"no message {message_id} for {principal.name}")

    def view(self, principal: Principal, message_id: str) -> MessageView:
        message, part = self.access(principal, message_id)
        recipients = self.store.recipients(message_id)
        if part is Part.RECIPIENT:
            recipients = [r for r in recipients if r.agency == principal.agency]
        return MessageView(message, part, recipients, self.store.attachments(message_id))

    def package(self, principal: Principal, message_id: str) -> bytes:
        """The signed package as the sender signed it (attachments inline)."""
        message, _ = self.access(principal, message_id)
        xml = self.blobs.get(message.package_sha256)
        if message.transport == "multipart":
            parts = [self.blobs.get(a.sha256) for a in self.store.attachments(message_id)]
            return reassemble(xml, parts)
        return xml

    def attachment(
        self, principal: Principal, message_id: str, sha256: str
    ) -> tuple[AttachmentRecord, bytes]:
        self.access(principal, message_id)
        for record in self.store.attachments(message_id):
            if record.sha256 == sha256:
                return record, self.blobs.get(sha256)
        raise UnknownMessage(f"message {message_id} has no attachment {sha256}")

    def receipt(self, principal: Principal, message_id: str) -> bytes:
        message, part = self.access(principal, message_id)
        if part is Part.RECIPIENT:
            raise UnknownMessage(f"the receipt of {message_id} belongs to its sender")
        return message.receipt_xml

    def status_xml(self, principal: Principal, message_id: str, status_id: int) -> bytes:
        """A status of the message as its party signed it."""
        message, part = self.access(principal, message_id)
        status = self.statuses.status(status_id)
        if (
            status is None
            or status.message_id != message.id
            or not sees(principal, part, message, status)
        ):
            raise UnknownMessage(f"message {message_id} has no status {status_id}")
        return status.xml

    def outbox(self, principal: Principal, limit: int = 100) -> list[Sent]:
        """The messages the caller's agency sent, newest first."""
        agency = principal.require_agency()
        return [
            Sent(m, self.store.recipients(m.id)) for m in self.store.sent_by(agency, bounded(limit))
        ]

    def received(self, principal: Principal, limit: int = 100) -> list[Received]:
        """Messages the caller's agency received, with its own state for each."""
        agency = principal.require_agency()
        found = []
        for m in self.store.received_by(agency, bounded(limit)):
            [own] = [r for r in self.store.recipients(m.id) if r.agency == agency]
            found.append(Received(m, own))
        return found


def sees(principal: Principal, part: Part, message: MessageRecord, status: StatusRecord) -> bool:
    """Whether the caller sees ``status``: a recipient, those between it and the sender."""
    if part is not Part.RECIPIENT:
        return True
    return status.from_agency in (principal.agency, message.sender)
