"""The mailbox: an agency's inbox, its acknowledgements, its push endpoint, and dead letters.

Delivery is at least once: an item stays in the inbox, after the agency's cursor, until it is
acknowledged, by a pull (:meth:`Mailbox.ack`) or by the push worker when the agency's endpoint
answered 2xx (:mod:`exchange.delivery`). Either way the delivery is recorded in the audit log,
in the transaction that acknowledges it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from certs.clock import utcnow
from certs.egress import (
    DENY_ALL,
    EgressPolicy,
    EgressRefused,
    Resolver,
    check_destination,
    system_resolver,
)

from . import audit as events
from .audit import AuditLog
from .auth import Principal, Role
from .errors import BadRequest, Forbidden, PushUrlRefused, UnknownMessage
from .mailbox_store import DeliveryRecord, MailboxStore
from .message_store import MessageRecord, MessageStore
from .status_store import StatusRecord, StatusStore

INBOX_LIMIT = 500


@dataclass(frozen=True)
class InboxItem:
    """One delivery with what it delivers: the message, and for a status the status."""

    delivery: DeliveryRecord
    message: MessageRecord
    status: StatusRecord | None  # for kind "status"


@dataclass(frozen=True)
class InboxPage:
    """Unacknowledged items after a cursor, and the cursor for the next page."""

    items: list[InboxItem]
    next: int


@dataclass(frozen=True)
class PushEndpoint:
    agency: str
    url: str | None  # None: the agency pulls


class Mailbox:
    """Inbox, acknowledgement, push endpoints and dead letters.

    ``push_policy`` says which push endpoints an agency may register (the administrator's
    egress allow-list; by default none), ``resolver`` how their host names are resolved.
    """

    def __init__(
        self,
        store: MailboxStore,
        messages: MessageStore,
        statuses: StatusStore,
        audit: AuditLog,
        clock: Callable[[], dt.datetime] = utcnow,
        push_policy: EgressPolicy = DENY_ALL,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.store = store
        self.messages = messages
        self.statuses = statuses
        self.audit = audit
        self.clock = clock
        self.push_policy = push_policy
        self.resolver = resolver

    # -- the inbox --

    def inbox(self, principal: Principal, after: int = 0, limit: int = 100) -> InboxPage:
        """Unacknowledged items after the cursor, oldest first (at least once: until acked)."""
        agency = principal.require_agency()
        if after < 0 or not 1 <= limit <= INBOX_LIMIT:
            raise BadRequest(f"after must be ≥ 0 and limit 1–{INBOX_LIMIT}")
        items = [self.item(d) for d in self.store.inbox(agency, after, limit)]
        return InboxPage(items, items[-1].delivery.id if items else after)

    def item(self, delivery: DeliveryRecord) -> InboxItem:
        """What ``delivery`` delivers (the push worker's notification, too)."""
        message = self.messages.message(delivery.message_id)
        assert message is not None
        if delivery.kind == "message":
            return InboxItem(delivery, message, None)
        assert delivery.status_id is not None
        status = self.statuses.status(delivery.status_id)
        assert status is not None
        return InboxItem(delivery, message, status)

    def ack(self, principal: Principal, delivery_id: int) -> DeliveryRecord:
        """Acknowledge one of the caller's items (again: no change); the item as it is now."""
        agency = principal.require_agency()
        delivery = self.store.delivery(delivery_id)
        if delivery is None or delivery.agency != agency:
            raise UnknownMessage(f"no inbox item {delivery_id} for {agency}")
        if delivery.acked_at is None:
            now = self.clock()
            with self.store.write() as conn:
                if self.store.mark_acked(conn, delivery_id, now, "pull"):
                    self.record_delivery(conn, delivery, agency, "pull", now)
            delivery = self.store.delivery(delivery_id)
            assert delivery is not None
        return delivery

    def record_delivery(
        self,
        conn: sa.Connection,
        delivery: DeliveryRecord,
        actor: str,
        via: str,
        now: dt.datetime,
    ) -> None:
        """Append the delivery to the audit log, in ``conn``, the acknowledging transaction."""
        self.audit.append(
            conn,
            events.DELIVERED,
            actor,
            delivery.message_id,
            {
                "delivery": delivery.id,
                "agency": delivery.agency,
                "kind": delivery.kind,
                "status_id": delivery.status_id,
                "via": via,
            },
            now,
        )

    # -- push endpoints and dead letters --

    def set_push_endpoint(self, principal: Principal, url: str | None) -> PushEndpoint:
        """Register (or, with None, remove) the agency's push endpoint.

        Raises :class:`PushUrlRefused` unless the URL is an acceptable http(s) URL whose host,
        and every address it resolves to now, the push policy allows. The worker checks again
        before each delivery: what a name resolves to may change.
        """
        agency = principal.require_agency()
        if url is not None:
            try:
                check_destination(self.push_policy, url, self.resolver)
            except EgressRefused as exc:
                raise PushUrlRefused(f"the push endpoint is refused: {exc}") from None
        now = self.clock()
        with self.store.write() as conn:
            self.store.set_push_endpoint(conn, agency, url, now)
            self.audit.append(
                conn, events.ADMIN, agency, agency, {"change": "push-endpoint", "url": url}, now
            )
        return PushEndpoint(agency, url)

    def dead_letters(self, principal: Principal) -> list[DeliveryRecord]:
        if not principal.reads_everything:
            raise Forbidden("only administrators and auditors see dead letters")
        return self.store.dead_letters()

    def revive(self, principal: Principal, delivery_id: int) -> None:
        """Push a dead letter again (an administrator)."""
        if principal.role is not Role.ADMIN:
            raise Forbidden("only an administrator may retry a dead letter")
        revive_dead_letter(self.store, self.audit, principal.name, delivery_id, self.clock())


def revive_dead_letter(
    store: MailboxStore, audit: AuditLog, actor: str, delivery_id: int, now: dt.datetime
) -> None:
    """Push the dead letter ``delivery_id`` again, audited as ``actor``'s change (an
    administrator's, through the API or the CLI); :class:`UnknownMessage` if there is none."""
    with store.write() as conn:
        if not store.revive(conn, delivery_id, now):
            raise UnknownMessage(f"no dead letter {delivery_id}")
        audit.append(
            conn,
            events.ADMIN,
            actor,
            str(delivery_id),
            {"change": "dead-letter-retried", "delivery": delivery_id},
            now,
        )
