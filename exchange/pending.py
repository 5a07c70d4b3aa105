"""Verification pending: packages held until their signatures can be decided.

When revocation information for a package's signer (or an attached PDF's) cannot be fetched
now — the verdict is INDETERMINATE/TRY_LATER, a network problem, not the signature's — and
:attr:`~exchange.config.RelayConfig.unreachable_responder` is ``pending``, the intake
(:class:`~exchange.relay.Relay`) stores the package as it stores any, signs the sender's
receipt at once, but owes it to no recipient: the message is ``pending`` and a row of
:mod:`exchange.pending_store` schedules its next verification. Its recipients see nothing of
it (no recipient row, no inbox item, no push) until it passes.

:meth:`PendingVerifications.run_once`, called by the background worker's housekeeping
(:mod:`exchange.delivery`), verifies due packages again (:meth:`Relay.check_held`), with
exponential backoff. A package ends once:

* it passes: it becomes ``verified``, its recipients' rows and deliveries are created as on
  a normal accept, and the sender receives a relay status 01 saying it was delivered;
* it fails (revoked, bad signature, a signer not registered to the sender…), or revocation
  information is still unavailable after ``verify_give_up``: it becomes ``refused``, the
  sender receives a relay status 02 with the reason, and it is never delivered.

Each decision is one transaction (state, deliveries, the relay's status, the audit row), taken
only if the package's pending row is still there: a package is delivered at most once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from certs.clock import utcnow
from signer import edxml

from . import audit as events
from . import mailbox_store
from .audit import AuditLog
from .blobs import BlobStore
from .config import RelayConfig
from .delivery import backoff
from .errors import ExchangeError
from .message_store import REFUSED, VERIFIED, MessageRecord, MessageStore
from .pending_store import PendingRecord, PendingStore
from .relay import PackageCheck, Relay
from .status_store import RELAY_PARTY, StatusStore
from .wire import reassemble_tree

# A verification fetches revocation information with bounded timeouts; a worker that died
# mid-way leaves its package to another after this.
LEASE = dt.timedelta(minutes=5)
BATCH = 20
DELIVERED_TEXT = "Trục liên thông đã xác minh chữ ký và chuyển gói tin đến: {recipients}"
REFUSED_TEXT = "Trục liên thông từ chối gói tin sau khi xác minh: {reason}"


@dataclass
class PendingResult:
    """What one round decided."""

    delivered: int = 0
    refused: int = 0
    waiting: int = 0


class PendingVerifications:
    """Verifies held packages again and decides them (see the module doc)."""

    def __init__(
        self,
        intake: Relay,
        store: PendingStore,
        messages: MessageStore,
        statuses: StatusStore,
        blobs: BlobStore,
        audit: AuditLog,
        config: RelayConfig,
        clock: Callable[[], dt.datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.intake = intake
        self.store = store
        self.messages = messages
        self.statuses = statuses
        self.blobs = blobs
        self.audit = audit
        self.config = config
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def run_once(self) -> PendingResult:
        """Verify the due packages again; what was decided."""
        result = PendingResult()
        now = self.clock()
        for record in self.store.due(now, BATCH):
            if self.store.lease(record, now + LEASE):
                self._attempt(record, result)
        return result

    def _attempt(self, record: PendingRecord, result: PendingResult) -> None:
        message = self.messages.message(record.message_id)
        assert message is not None
        try:
            check = self.intake.check_held(message, self._document(message))
        except ExchangeError as exc:
            self._refuse(message, record, f"{type(exc).__name__}: {exc}")
            result.refused += 1
            return
        if not check.held:
            self._deliver(message, record, check)
            result.delivered += 1
            return
        now, reason = self.clock(), check.reason or "revocation information is unavailable"
        if now - record.since >= self.config.verify_give_up:
            self._refuse(message, record, f"{reason}, still after {self.config.verify_give_up}")
            result.refused += 1
            return
        attempts = record.attempts + 1
        delay = backoff(
            attempts, self.config.verify_base_delay, self.config.verify_max_delay, self.rng
        )
        self.store.schedule(message.id, attempts, now + dt.timedelta(seconds=delay), reason)
        result.waiting += 1

    def _document(self, message: MessageRecord) -> bytes | Any:
        """The package as the intake verified it (a multipart one put back together)."""
        xml = self.blobs.get(message.package_sha256)
        if message.transport != "multipart":
            return xml
        parts = [self.blobs.get(a.sha256) for a in self.messages.attachments(message.id)]
        return reassemble_tree(xml, parts)

    def _deliver(self, message: MessageRecord, record: PendingRecord, check: PackageCheck) -> None:
        now = self.clock()
        text = DELIVERED_TEXT.format(recipients=", ".join(record.recipients))
        xml = self.intake.receipts.sign_status(check.package, edxml.StatusCode.ARRIVED, text, now)
        with self.store.write() as conn:
            if not self.store.settle(conn, message.id):
                return  # another worker decided it
            self.messages.set_verification(conn, message.id, VERIFIED, check.signer_serial)
            deliveries = self.messages.deliver(conn, message.id, record.recipients, now)
            status_id = self._tell_sender(conn, message, edxml.StatusCode.ARRIVED, xml, now)
            self.audit.append(
                conn,
                events.VERIFIED,
                "relay",
                message.id,
                {
                    "signer_serial": check.signer_serial,
                    "recipients": list(record.recipients),
                    "deliveries": deliveries,
                    "status_id": status_id,
                    "attempts": record.attempts + 1,
                },
                now,
            )

    def _refuse(self, message: MessageRecord, record: PendingRecord, reason: str) -> None:
        now = self.clock()
        package = edxml.parse_package(self._document(message))
        xml = self.intake.receipts.sign_status(
            package, edxml.StatusCode.REFUSED, REFUSED_TEXT.format(reason=reason), now
        )
        with self.store.write() as conn:
            if not self.store.settle(conn, message.id):
                return
            self.messages.set_verification(conn, message.id, REFUSED, message.signer_serial)
            status_id = self._tell_sender(conn, message, edxml.StatusCode.REFUSED, xml, now)
            self.audit.append(
                conn,
                events.VERIFICATION_REFUSED,
                "relay",
                message.id,
                {"reason": reason[:500], "status_id": status_id, "attempts": record.attempts + 1},
                now,
            )

    def _tell_sender(
        self,
        conn: sa.Connection,
        message: MessageRecord,
        code: edxml.StatusCode,
        xml: bytes,
        now: dt.datetime,
    ) -> int:
        """Store the relay's signed status and owe it to the sender; its id."""
        status_id = self.statuses.insert_status(
            conn,
            message.id,
            RELAY_PARTY,
            code.value,
            xml,
            hashlib.sha256(xml).hexdigest(),
            now,
            now,
        )
        mailbox_store.add_deliveries(conn, (message.sender,), "status", message.id, status_id, now)
        return status_id
