"""The status lifecycle: a party's signed status about a message, checked and carried on.

A status is verified like a package (:meth:`exchange.relay.Relay.verify_status`: signature,
registered certificate of the sending agency), must answer this message, be dated between the
message's arrival and now (within the clock skew), and be a step :mod:`exchange.lifecycle`
allows from where the party stands. It is then stored, the recipient's state (or the
message's recall) updated, the status owed to the other party, and the audit row appended,
in one transaction. A refused status leaves only its refusal in the audit log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from certs.clock import utcnow
from signer import edxml

from . import audit as events
from . import lifecycle, mailbox_store
from .audit import AuditLog
from .auth import Principal
from .config import RelayConfig
from .errors import (
    DuplicateStatus,
    ExchangeError,
    Forbidden,
    InvalidPackage,
    InvalidTransition,
    PackageTooLarge,
    SenderMismatch,
)
from .message_store import MessageRecord, MessageStore
from .messages import Messages, Part
from .relay import Relay
from .status_store import StatusStore


@dataclass(frozen=True)
class StatusReceived:
    """The answer to a status: stored, and owed to these agencies."""

    status_id: int
    message_id: str
    code: str
    received_at: dt.datetime
    delivered_to: tuple[str, ...]


class Statuses:
    """Status messages from a message's parties."""

    def __init__(
        self,
        intake: Relay,
        messages: Messages,
        store: StatusStore,
        message_store: MessageStore,
        audit: AuditLog,
        config: RelayConfig,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.intake = intake
        self.messages = messages
        self.store = store
        self.message_store = message_store
        self.audit = audit
        self.config = config
        self.clock = clock

    def submit(self, principal: Principal, message_id: str, xml: bytes) -> StatusReceived:
        """Accept a signed status about a message from one of its parties."""
        agency = principal.require_agency()
        sha256 = hashlib.sha256(xml).hexdigest()
        try:
            message, part = self.messages.access(principal, message_id)
            if len(xml) > self.config.max_package_bytes:
                raise PackageTooLarge("the status message is too large")
            if self.store.status_by_sha(sha256) is not None:
                raise DuplicateStatus("this very status message was already received (a replay)")
            status = self.intake.verify_status(xml, agency)
            self._check(status, message, agency)
            return self._store(message, part, agency, status, xml, sha256)
        except ExchangeError as exc:
            self.intake.reject(principal, f"status of {message_id}"[:64], sha256, len(xml), exc)
            raise

    def _check(self, status: edxml.StatusMessage, message: MessageRecord, agency: str) -> None:
        if not message.verified:
            raise InvalidTransition(
                f"message {message.id} is {message.verification}, not delivered: it has no "
                "lifecycle (verification pending: wait for the relay's status)"
            )
        if status.sender.organ_id != agency:
            raise SenderMismatch(
                f"the status is from {status.sender.organ_id}, but you are {agency}"
            )
        reference = status.response_for
        if reference.document_id != message.document_id or reference.organ_id != message.sender:
            raise InvalidPackage(
                f"the status answers {reference.document_id}, not message {message.id} "
                f"({message.document_id})"
            )
        now, skew = self.clock(), self.config.clock_skew
        if status.timestamp < message.received_at - skew:
            raise InvalidPackage(
                f"the status is dated {status.timestamp.isoformat()}, before the message "
                f"reached the relay ({message.received_at.isoformat()}): an old status replayed?"
            )
        if status.timestamp > now + skew:
            raise InvalidPackage(f"the status is dated in the future ({status.timestamp})")

    def _transition(
        self, conn: sa.Connection, message: MessageRecord, part: Part, agency: str, code: str
    ) -> lifecycle.Transition:
        """What ``code`` from this party does, given where the message stands in ``conn``."""
        parties = [
            lifecycle.Party(r.agency, r.state, r.answer)
            for r in self.message_store.recipients(message.id, conn)
        ]
        recalled = self.message_store.recalled_at(conn, message.id) is not None
        if part is Part.SENDER:
            return lifecycle.sender_transition(code, parties, recalled=recalled)
        if part is Part.RECIPIENT:
            [party] = [p for p in parties if p.agency == agency]
            return lifecycle.recipient_transition(
                code, party, message.sender, recalled=recalled, doc_type=message.doc_type
            )
        raise Forbidden("only the sender or a recipient may report a status")

    def _store(
        self,
        message: MessageRecord,
        part: Part,
        agency: str,
        status: edxml.StatusMessage,
        xml: bytes,
        sha256: str,
    ) -> StatusReceived:
        code = status.code.value
        now = self.clock()
        try:
            with self.store.write() as conn:
                transition = self._transition(conn, message, part, agency, code)
                status_id = self.store.insert_status(
                    conn, message.id, agency, code, xml, sha256, status.timestamp, now
                )
                if transition.recall:
                    self.message_store.mark_recalled(conn, message.id, now)
                elif transition.state or transition.answer:
                    self.message_store.set_recipient(
                        conn,
                        message.id,
                        agency,
                        now,
                        state=transition.state,
                        answer=transition.answer,
                    )
                mailbox_store.add_deliveries(
                    conn, transition.deliver_to, "status", message.id, status_id, now
                )
                self.audit.append(
                    conn,
                    events.STATUS,
                    agency,
                    message.id,
                    {
                        "code": code,
                        "status_id": status_id,
                        "sha256": sha256,
                        "to": list(transition.deliver_to),
                        "description": status.description[:200],
                    },
                    now,
                )
        except sa.exc.IntegrityError:
            raise DuplicateStatus("this very status message was already received") from None
        return StatusReceived(status_id, message.id, code, now, tuple(transition.deliver_to))
