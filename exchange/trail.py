"""The record: a message's signed trail for its parties, and the audit log for its readers.

The trail of a message is the relay's receipt (for the sender and readers), then every
status the caller may see, in order, with each recipient's state and when the message was
delivered to it. The audit log, and the verification of its chain and checkpoints, are for
administrators and auditors only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .audit import AuditEvent, AuditLog, ChainVerdict, TokenChecker, verify_chain
from .auth import Principal
from .errors import Forbidden
from .mailbox_store import MailboxStore
from .message_store import RecipientRecord
from .messages import Messages, MessageView, Part, sees
from .status_store import StatusRecord, StatusStore

AUDIT_PAGE_LIMIT = 1000


@dataclass(frozen=True)
class RecipientProgress:
    """A recipient's state, and when the message was delivered to it (acknowledged)."""

    recipient: RecipientRecord
    delivered_at: dt.datetime | None


@dataclass(frozen=True)
class MessageTrail:
    """The whole signed lifecycle of a message, as one party sees it."""

    view: MessageView
    receipt: bool  # whether the receipt belongs to the trail (not for a recipient)
    statuses: list[StatusRecord]
    recipients: list[RecipientProgress]


class Trail:
    """Messages' trails and the audit log, each for whom may read it."""

    def __init__(
        self,
        messages: Messages,
        statuses: StatusStore,
        deliveries: MailboxStore,
        audit: AuditLog,
        check_token: TokenChecker,
    ) -> None:
        self.messages = messages
        self.statuses = statuses
        self.deliveries = deliveries
        self.audit = audit
        self.check_token = check_token

    def message_trail(self, principal: Principal, message_id: str) -> MessageTrail:
        """The receipt, then every status, in order (see the module doc)."""
        view = self.messages.view(principal, message_id)  # a recipient sees only itself
        message, part = view.message, view.part
        statuses = [
            s for s in self.statuses.statuses(message_id) if sees(principal, part, message, s)
        ]
        acked = {
            d.agency: d.acked_at
            for d in self.deliveries.deliveries_of(message_id)
            if d.kind == "message"
        }
        recipients = [RecipientProgress(r, acked.get(r.agency)) for r in view.recipients]
        return MessageTrail(view, part is not Part.RECIPIENT, statuses, recipients)

    def events(self, principal: Principal, after: int = 0, limit: int = 100) -> list[AuditEvent]:
        """Audit rows after ``after`` (at most :data:`AUDIT_PAGE_LIMIT`)."""
        _require_reader(principal)
        return self.audit.events(after, min(max(limit, 1), AUDIT_PAGE_LIMIT))

    def verify(self, principal: Principal) -> ChainVerdict:
        """Recompute the chain and check the checkpoints' timestamps."""
        _require_reader(principal)
        return verify_chain(self.audit, self.check_token)


def _require_reader(principal: Principal) -> None:
    if not principal.reads_everything:
        raise Forbidden("only auditors and administrators read the audit log")
