"""The relay: accept packages, deliver them, carry statuses back, keep the trail.

Accepting a package is, in order: size → idempotency (same key, or same bytes from the same
sender: the stored receipt, nothing new) → reassemble multipart parts → schema and XAdES
signature (``signer.xades``) → the signer is a registered, unrevoked certificate of the
authenticated agency, which is also the package's ``From`` → routing → every PDF attachment's
signatures → files written and fsynced → receipt signed (relay key, TSA timestamp) → one
database transaction (message, attachments, recipients, deliveries, audit row) → answer.
Nothing is acknowledged before it is durable, and nothing of a refused package is stored
but the refusal in the audit log.

Every function takes the authenticated :class:`~exchange.auth.Principal` and decides on its
own what the caller may see: another agency's messages do not exist for it (404).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
from certs.store import CertificateStore
from directory import Agency, Directory, DirectoryError
from signer import edxml, xml_signing
from signer.errors import DocumentTooLarge, NoSignature, SignerError
from signer.pdf_input import looks_like_pdf
from signer.pdf_verify import verify_pdf
from signer.report import Report, SubIndication

from . import audit as events
from . import lifecycle
from .audit import AuditLog
from .auth import Principal, Role
from .blobs import BlobStore
from .config import RelayConfig
from .errors import (
    BadRequest,
    CertificateRefused,
    DuplicateStatus,
    ExchangeError,
    Forbidden,
    IdempotencyConflict,
    InvalidPackage,
    PackageTooLarge,
    PushUrlRefused,
    RoutingDenied,
    SenderMismatch,
    SignatureRejected,
    UnknownMessage,
    UnsignedDocument,
)
from .receipts import ReceiptSigner
from .routing import RoutingRules
from .store import (
    AgencyStore,
    AttachmentRecord,
    DeliveryRecord,
    ExchangeStore,
    MessageRecord,
    NewMessage,
    StatusRecord,
)
from .trust import Trust
from .wire import reassemble, reassemble_tree

REVOKED_SUBINDICATIONS = frozenset(
    {SubIndication.REVOKED, SubIndication.REVOKED_NO_POE, SubIndication.REVOKED_CA_NO_POE}
)
MAX_IDEMPOTENCY_KEY = 200
DIRECTORY_TTL = 5.0
INBOX_LIMIT = 500


def new_message_id() -> str:
    """32 hex digits, time-ordered (milliseconds first), unguessable."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(10)}"


@dataclass(frozen=True)
class Accepted:
    """The answer to a send: the message and its signed receipt."""

    message: MessageRecord
    created: bool  # False: a repeated send, answered with the stored receipt

    @property
    def receipt_xml(self) -> bytes:
        return self.message.receipt_xml


@dataclass(frozen=True)
class Verified:
    """A signed document that passed verification, with its signer's agency."""

    report: Report
    content: bytes
    signer_serial: str


class Relay:
    """The exchange relay's domain operations.

    ``push_policy`` says which push endpoints an agency may register (the administrator's
    egress allow-list; by default none), ``resolver`` how their host names are resolved.
    """

    def __init__(
        self,
        engine: sa.Engine,
        blobs: BlobStore,
        trust: Trust,
        receipts: ReceiptSigner,
        routing: RoutingRules,
        certificates: CertificateStore,
        config: RelayConfig,
        clock: Callable[[], dt.datetime] = utcnow,
        push_policy: EgressPolicy = DENY_ALL,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.engine = engine
        self.store = ExchangeStore(engine)
        self.audit = AuditLog(self.store)
        self.agencies = AgencyStore(engine)
        self.blobs = blobs
        self.trust = trust
        self.receipts = receipts
        self.routing = routing
        self.certificates = certificates
        self.config = config
        self.clock = clock
        self.push_policy = push_policy
        self.resolver = resolver
        self._directory: tuple[float, Directory] | None = None
        self._lock = threading.Lock()

    # -- the directory --

    def directory(self) -> Directory:
        now = time.monotonic()
        with self._lock:
            if self._directory is not None and now - self._directory[0] < DIRECTORY_TTL:
                return self._directory[1]
        directory = self.agencies.directory()
        with self._lock:
            self._directory = (now, directory)
        return directory

    def directory_view(self, principal: Principal) -> dict[str, Any]:
        directory = self.directory()
        reachable: list[str] = []
        if principal.agency:
            reachable = [a.code for a in self.routing.reachable(directory, principal.agency)]
        certificates: dict[str, list[dict[str, Any]]] = {}
        for record in self.certificates.all():
            if record.agency_code and record.profile in ("seal", "person"):
                certificates.setdefault(record.agency_code, []).append(
                    {
                        "serial": format(record.serial, "X"),
                        "profile": record.profile,
                        "common_name": record.common_name,
                        "not_after": record.not_after.isoformat(),
                        "revoked": record.revoked,
                    }
                )
        return {
            "agencies": [
                {
                    "code": a.code,
                    "name": a.name,
                    "level": a.level,
                    "parent": a.parent,
                    "province": a.province,
                    "certificates": certificates.get(a.code, []),
                }
                for a in directory
            ],
            "you": principal.agency,
            "you_may_send_to": reachable,
            "routing": self.routing.source,
        }

    def upsert_agency(self, principal: Principal, agency: Agency) -> bool:
        """An admin adds or changes an agency (the tree is re-checked first)."""
        if principal.role is not Role.ADMIN:
            raise Forbidden("only an administrator may edit the directory")
        current = [a for a in self.agencies.directory() if a.code != agency.code]
        Directory((*current, agency))  # codes, parents, cycles
        with self.store.write() as conn:
            created = self.agencies.upsert(agency, conn)
            self.audit.append(
                conn,
                events.ADMIN,
                principal.name,
                agency.code,
                {
                    "change": "agency-added" if created else "agency-changed",
                    "name": agency.name,
                    "level": agency.level,
                    "parent": agency.parent,
                },
            )
        with self._lock:
            self._directory = None
        return created

    # -- verification shared by packages and statuses --

    def _verify(self, document: bytes, name: str, agency: str) -> Verified:
        """A signed document (a status) that passed verification, and its signed bytes."""
        try:
            verification = xml_signing.verify_document(document, self.trust.policy(), name)
        except SignerError as exc:
            raise self._refusal(name, exc) from None
        signed = verification.signed_content
        serial = self._signer_serial(verification.report, signed is not None, name, agency)
        assert signed is not None  # a passed verdict without signed content was refused
        return Verified(verification.report, signed, serial)

    def _verify_package(self, document: bytes | Any, agency: str) -> tuple[edxml.Package, str]:
        """The package the signature covers, parsed and validated once (``document``: the
        bytes as received, or the tree :func:`~exchange.wire.reassemble_tree` put together),
        and the serial number of its signer's certificate."""
        name = "the package"
        try:
            verification = xml_signing.verify_package(document, self.trust.policy(), name)
        except SignerError as exc:
            raise self._refusal(name, exc) from None
        package = verification.package
        serial = self._signer_serial(verification.report, package is not None, name, agency)
        assert package is not None  # a passed verdict without a package was refused
        return package, serial

    def _signer_serial(self, report: Report, signed: bool, name: str, agency: str) -> str:
        """The signer's serial, once the verdict passed and the signer is ``agency``'s
        registered, unrevoked certificate; else the refusal."""
        [signature] = report.signatures
        if not report.passed or not signed or signature.signer is None:
            why = "; ".join(signature.details[:3]) or str(signature.sub_indication)
            extensions = {"report": report.to_dict()}
            if signature.sub_indication in REVOKED_SUBINDICATIONS:
                raise CertificateRefused(f"{name}: the signing certificate is revoked", extensions)
            raise SignatureRejected(
                f"{name}: the signature is not valid ({signature.sub_indication}: {why})",
                extensions,
            )
        serial = signature.signer.serial
        record = self.certificates.find(int(serial, 16))
        if record is None or hashlib.sha256(record.der).hexdigest() != signature.signer.sha256:
            raise CertificateRefused(
                f"{name}: the signing certificate {serial} is not registered in the directory"
            )
        if record.agency_code != agency:
            raise SenderMismatch(
                f"{name} is signed with a certificate of {record.agency_code or 'no agency'} "
                f"({record.common_name}), not of {agency}"
            )
        if record.revoked:
            raise CertificateRefused(
                f"{name}: the signing certificate {serial} of {agency} is revoked "
                f"({record.revocation_reason})"
            )
        return serial

    @staticmethod
    def _refusal(name: str, exc: SignerError) -> ExchangeError:
        """The relay's answer to a document the verification could not read."""
        if isinstance(exc, DocumentTooLarge):
            return PackageTooLarge(str(exc))
        if isinstance(exc, NoSignature):
            return UnsignedDocument(f"{name} is not signed: {exc}")
        return InvalidPackage(f"{name}: {exc}")

    def _check_pdfs(self, package: edxml.Package) -> None:
        for attachment in package.attachments:
            if attachment.content_type != "application/pdf" and not looks_like_pdf(
                attachment.data[:1024]
            ):
                continue
            try:
                report = verify_pdf(
                    io.BytesIO(attachment.data), self.trust.policy(), attachment.name
                )
            except SignerError as exc:
                raise InvalidPackage(f"attachment {attachment.name!r}: {exc}") from None
            if not report.signatures and not self.config.require_signed_pdfs:
                continue
            if not report.passed:
                failed = [s for s in report.signatures if not s.passed]
                why = (
                    "it carries no signature"
                    if not report.signatures
                    else f"{failed[0].identifier}: {failed[0].sub_indication}"
                )
                raise SignatureRejected(
                    f"PDF attachment {attachment.name!r} is not validly signed ({why})",
                    {"report": report.to_dict(), "attachment": attachment.name},
                )

    # -- sending --

    def accept(
        self,
        principal: Principal,
        xml: bytes,
        parts: Sequence[bytes] = (),
        idempotency_key: str | None = None,
    ) -> Accepted:
        """Accept a signed package from the authenticated agency (see the module doc)."""
        agency = principal.require_agency()
        package_sha256 = hashlib.sha256(xml).hexdigest()
        size = len(xml) + sum(len(p) for p in parts)
        try:
            if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
                raise BadRequest(f"the Idempotency-Key must be 1–{MAX_IDEMPOTENCY_KEY} characters")
            if size > self.config.max_package_bytes:
                raise PackageTooLarge(
                    f"the package is {size} bytes; the relay accepts at most "
                    f"{self.config.max_package_bytes}"
                )
            existing = self.store.find_message(agency, package_sha256, idempotency_key)
            if existing is not None:
                return self._repeat(existing, package_sha256, idempotency_key)
            return self._accept(agency, xml, parts, package_sha256, size, idempotency_key)
        except ExchangeError as exc:
            self._reject(principal, "package", package_sha256, size, exc)
            raise

    def _repeat(
        self, existing: MessageRecord, package_sha256: str, idempotency_key: str | None
    ) -> Accepted:
        if existing.package_sha256 != package_sha256:
            raise IdempotencyConflict(
                f"Idempotency-Key {idempotency_key!r} was used for message {existing.id}, "
                "a different package"
            )
        return Accepted(existing, created=False)

    def _accept(
        self,
        agency: str,
        xml: bytes,
        parts: Sequence[bytes],
        package_sha256: str,
        size: int,
        idempotency_key: str | None,
    ) -> Accepted:
        document = reassemble_tree(xml, parts) if parts else xml
        package, signer_serial = self._verify_package(document, agency)
        if package.sender.organ_id != agency:
            raise SenderMismatch(
                f"the package is from {package.sender.organ_id}, but you are {agency}"
            )
        recipients = tuple(dict.fromkeys(r.organ_id for r in package.recipients))
        if not recipients:
            raise InvalidPackage("the package names no recipient")
        if agency in recipients:
            raise RoutingDenied(f"{agency} cannot send a package to itself")
        self.routing.check(self.directory(), agency, recipients)
        doc_type = int(package.business.doc_type) if package.business else 0
        refers_to = self._original(agency, package) if doc_type else None
        self._check_pdfs(package)

        self.blobs.put(xml)
        stored = []
        for position, attachment in enumerate(package.attachments):
            sha256 = self.blobs.put(attachment.data)
            stored.append(
                AttachmentRecord(
                    position,
                    attachment.content_id,
                    attachment.name,
                    attachment.content_type,
                    sha256,
                    len(attachment.data),
                )
            )
        message_id = new_message_id()
        received_at = self.clock().replace(microsecond=0)
        receipt = self.receipts.sign(message_id, package, package_sha256, received_at, recipients)
        new = NewMessage(
            MessageRecord(
                id=message_id,
                sender=agency,
                document_id=package.document_id,
                code=f"{package.code.number}/{package.code.notation}",
                subject=package.subject,
                doc_type=doc_type,
                refers_to=refers_to,
                package_sha256=package_sha256,
                package_size=size,
                transport="multipart" if parts else "inline",
                idempotency_key=idempotency_key,
                received_at=received_at,
                receipt_xml=receipt,
                receipt_sha256=hashlib.sha256(receipt).hexdigest(),
                signer_serial=signer_serial,
                recalled_at=None,
            ),
            recipients=recipients,
            attachments=tuple(stored),
        )
        try:
            with self.store.write() as conn:
                self.store.insert_message(conn, new)
                self.audit.append(
                    conn,
                    events.SENT,
                    agency,
                    message_id,
                    {
                        "document_id": new.message.document_id,
                        "package_sha256": package_sha256,
                        "receipt_sha256": new.message.receipt_sha256,
                        "recipients": list(recipients),
                        "attachments": [a.sha256 for a in stored],
                        "doc_type": doc_type,
                        "refers_to": refers_to,
                        "signer_serial": signer_serial,
                    },
                    received_at,
                )
        except sa.exc.IntegrityError:
            # The same package (or key) won a race with this request: answer with its receipt.
            existing = self.store.find_message(agency, package_sha256, idempotency_key)
            if existing is None:
                raise
            return self._repeat(existing, package_sha256, idempotency_key)
        stored_message = self.store.message(message_id)
        assert stored_message is not None
        return Accepted(stored_message, created=True)

    def _original(self, agency: str, package: edxml.Package) -> str:
        for reference in package.response_for:
            if reference.organ_id != agency:
                continue
            original = self.store.find_document(agency, reference.document_id)
            if original is not None:
                return original.id
        kind = {1: "revokes", 2: "updates", 3: "replaces"}.get(
            int(package.business.doc_type) if package.business else 0, "changes"
        )
        raise InvalidPackage(
            f"this package {kind} an earlier document: name it in ResponseFor (its "
            f"DocumentId, sent by {agency} through this relay)"
        )

    def _reject(
        self, principal: Principal, what: str, sha256: str, size: int, exc: ExchangeError
    ) -> None:
        self.audit.record(
            events.REJECTED,
            principal.name,
            sha256,
            {
                "what": what,
                "reason": type(exc).__name__,
                "detail": str(exc)[:500],
                "bytes": size,
            },
        )

    # -- reading messages --

    def _access(self, principal: Principal, message_id: str) -> tuple[MessageRecord, str]:
        """The message and the caller's part in it: sender, recipient or reader."""
        message = self.store.message(message_id) if len(message_id) <= 64 else None
        if message is not None:
            if principal.reads_everything:
                return message, "reader"
            if principal.agency == message.sender:
                return message, "sender"
            recipients = {r.agency for r in self.store.recipients(message_id)}
            if principal.agency in recipients:
                return message, "recipient"
        raise UnknownMessage(f"no message {message_id} for {principal.name}")

    def message_view(self, principal: Principal, message_id: str) -> dict[str, Any]:
        message, role = self._access(principal, message_id)
        recipients = self.store.recipients(message_id)
        if role == "recipient":
            recipients = [r for r in recipients if r.agency == principal.agency]
        base = f"/api/v1/messages/{message.id}"
        view: dict[str, Any] = {
            "id": message.id,
            "sender": message.sender,
            "document_id": message.document_id,
            "code": message.code,
            "subject": message.subject,
            "doc_type": message.doc_type,
            "refers_to": message.refers_to,
            "package_sha256": message.package_sha256,
            "transport": message.transport,
            "received_at": message.received_at.isoformat(),
            "recalled_at": message.recalled_at.isoformat() if message.recalled_at else None,
            "recipients": [
                {"agency": r.agency, "state": r.state, "answer": r.answer} for r in recipients
            ],
            "attachments": [
                {
                    "content_id": a.content_id,
                    "name": a.name,
                    "content_type": a.content_type,
                    "sha256": a.sha256,
                    "size": a.size,
                    "href": f"{base}/attachments/{a.sha256}",
                }
                for a in self.store.attachments(message_id)
            ],
            "package": f"{base}/package",
            "trail": f"{base}/trail",
        }
        if role != "recipient":
            view["receipt"] = f"{base}/receipt"
        return view

    def package(self, principal: Principal, message_id: str) -> bytes:
        """The signed package as the sender signed it (attachments inline)."""
        message, _ = self._access(principal, message_id)
        xml = self.blobs.get(message.package_sha256)
        if message.transport == "multipart":
            parts = [self.blobs.get(a.sha256) for a in self.store.attachments(message_id)]
            return reassemble(xml, parts)
        return xml

    def attachment(
        self, principal: Principal, message_id: str, sha256: str
    ) -> tuple[AttachmentRecord, bytes]:
        self._access(principal, message_id)
        for record in self.store.attachments(message_id):
            if record.sha256 == sha256:
                return record, self.blobs.get(sha256)
        raise UnknownMessage(f"message {message_id} has no attachment {sha256}")

    def receipt(self, principal: Principal, message_id: str) -> bytes:
        message, role = self._access(principal, message_id)
        if role == "recipient":
            raise UnknownMessage(f"the receipt of {message_id} belongs to its sender")
        return message.receipt_xml

    def status_xml(self, principal: Principal, message_id: str, status_id: int) -> bytes:
        message, role = self._access(principal, message_id)
        status = self.store.status(status_id)
        if (
            status is None
            or status.message_id != message.id
            or not self._sees(principal, role, message, status)
        ):
            raise UnknownMessage(f"message {message_id} has no status {status_id}")
        return status.xml

    @staticmethod
    def _sees(
        principal: Principal, role: str, message: MessageRecord, status: StatusRecord
    ) -> bool:
        if role != "recipient":
            return True
        return status.from_agency in (principal.agency, message.sender)

    def trail(self, principal: Principal, message_id: str) -> dict[str, Any]:
        """The whole signed lifecycle: the receipt, then every status, in order."""
        message, role = self._access(principal, message_id)
        base = f"/api/v1/messages/{message.id}"
        trail: list[dict[str, Any]] = []
        if role != "recipient":
            trail.append(
                {
                    "kind": "receipt",
                    "code": edxml.StatusCode.ARRIVED.value,
                    "meaning": "Trục liên thông đã nhận",
                    "from": "relay",
                    "at": message.received_at.isoformat(),
                    "sha256": message.receipt_sha256,
                    "href": f"{base}/receipt",
                }
            )
        for status in self.store.statuses(message_id):
            if not self._sees(principal, role, message, status):
                continue
            trail.append(
                {
                    "kind": "status",
                    "id": status.id,
                    "code": status.code,
                    "meaning": edxml.StatusCode(status.code).meaning[0],
                    "from": status.from_agency,
                    "signed_at": status.signed_at.isoformat(),
                    "at": status.received_at.isoformat(),
                    "sha256": status.sha256,
                    "href": f"{base}/statuses/{status.id}",
                }
            )
        deliveries = {
            d.agency: d for d in self.store.deliveries_of(message_id) if d.kind == "message"
        }
        recipients = [
            {
                "agency": r.agency,
                "state": r.state,
                "answer": r.answer,
                "delivered_at": (
                    deliveries[r.agency].acked_at.isoformat()  # type: ignore[union-attr]
                    if r.agency in deliveries and deliveries[r.agency].acked_at
                    else None
                ),
            }
            for r in self.store.recipients(message_id)
            if role != "recipient" or r.agency == principal.agency
        ]
        return {
            "message": self.message_view(principal, message_id),
            "recipients": recipients,
            "trail": trail,
        }

    def outbox(self, principal: Principal, limit: int = 100) -> list[dict[str, Any]]:
        agency = principal.require_agency()
        return [
            {
                "id": m.id,
                "document_id": m.document_id,
                "code": m.code,
                "subject": m.subject,
                "received_at": m.received_at.isoformat(),
                "recalled_at": m.recalled_at.isoformat() if m.recalled_at else None,
                "recipients": [
                    {"agency": r.agency, "state": r.state, "answer": r.answer}
                    for r in self.store.recipients(m.id)
                ],
            }
            for m in self.store.sent_by(agency, min(max(limit, 1), INBOX_LIMIT))
        ]

    def received(self, principal: Principal, limit: int = 100) -> list[dict[str, Any]]:
        """Messages the caller's agency received, with its own state for each."""
        agency = principal.require_agency()
        found = []
        for m in self.store.received_by(agency, min(max(limit, 1), INBOX_LIMIT)):
            [own] = [r for r in self.store.recipients(m.id) if r.agency == agency]
            found.append(
                {
                    "id": m.id,
                    "sender": m.sender,
                    "document_id": m.document_id,
                    "code": m.code,
                    "subject": m.subject,
                    "received_at": m.received_at.isoformat(),
                    "recalled_at": m.recalled_at.isoformat() if m.recalled_at else None,
                    "state": own.state,
                    "answer": own.answer,
                }
            )
        return found

    # -- inbox --

    def inbox(self, principal: Principal, after: int = 0, limit: int = 100) -> dict[str, Any]:
        """Unacknowledged items after the cursor, oldest first (at least once: until acked)."""
        agency = principal.require_agency()
        if after < 0 or not 1 <= limit <= INBOX_LIMIT:
            raise BadRequest(f"after must be ≥ 0 and limit 1–{INBOX_LIMIT}")
        items = [self.inbox_item(d) for d in self.store.inbox(agency, after, limit)]
        return {"items": items, "next": items[-1]["id"] if items else after}

    def inbox_item(self, delivery: DeliveryRecord) -> dict[str, Any]:
        message = self.store.message(delivery.message_id)
        assert message is not None
        base = f"/api/v1/messages/{message.id}"
        item: dict[str, Any] = {
            "id": delivery.id,
            "kind": delivery.kind,
            "message_id": message.id,
            "document_id": message.document_id,
            "subject": message.subject,
            "sender": message.sender,
            "created_at": delivery.created_at.isoformat(),
            "ack": f"/api/v1/inbox/{delivery.id}/ack",
        }
        if delivery.kind == "message":
            item.update(
                {"from": message.sender, "code": message.code, "doc_type": message.doc_type}
            )
            item["package"] = f"{base}/package"
        else:
            assert delivery.status_id is not None
            status = self.store.status(delivery.status_id)
            assert status is not None
            item.update(
                {
                    "from": status.from_agency,
                    "status_id": status.id,
                    "code": status.code,
                    "meaning": edxml.StatusCode(status.code).meaning[0],
                    "href": f"{base}/statuses/{status.id}",
                }
            )
        return item

    def ack(self, principal: Principal, delivery_id: int) -> dict[str, Any]:
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
        return {
            "id": delivery.id,
            "acked_at": delivery.acked_at.isoformat() if delivery.acked_at else None,
        }

    def record_delivery(
        self,
        conn: sa.Connection,
        delivery: DeliveryRecord,
        actor: str,
        via: str,
        now: dt.datetime,
    ) -> None:
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

    # -- statuses --

    def submit_status(self, principal: Principal, message_id: str, xml: bytes) -> dict[str, Any]:
        """Accept a signed status about a message from one of its parties."""
        agency = principal.require_agency()
        sha256 = hashlib.sha256(xml).hexdigest()
        try:
            message, role = self._access(principal, message_id)
            if len(xml) > self.config.max_package_bytes:
                raise PackageTooLarge("the status message is too large")
            if self.store.status_by_sha(sha256) is not None:
                raise DuplicateStatus("this very status message was already received (a replay)")
            verified = self._verify(xml, "the status", agency)
            try:
                status = edxml.parse_status(verified.content)
            except SignerError as exc:
                raise InvalidPackage(f"the status: {exc}") from None
            self._check_status(status, message, agency)
            return self._store_status(message, role, agency, status, xml, sha256)
        except ExchangeError as exc:
            self._reject(principal, f"status of {message_id}"[:64], sha256, len(xml), exc)
            raise

    def _check_status(
        self, status: edxml.StatusMessage, message: MessageRecord, agency: str
    ) -> None:
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

    def _store_status(
        self,
        message: MessageRecord,
        role: str,
        agency: str,
        status: edxml.StatusMessage,
        xml: bytes,
        sha256: str,
    ) -> dict[str, Any]:
        code = status.code.value
        now = self.clock()
        try:
            with self.store.write() as conn:
                parties = [
                    lifecycle.Party(r.agency, r.state, r.answer)
                    for r in self.store.recipients(message.id, conn)
                ]
                recalled = self.store.recalled_at(conn, message.id) is not None
                if role == "sender":
                    transition = lifecycle.sender_transition(code, parties, recalled=recalled)
                elif role == "recipient":
                    [party] = [p for p in parties if p.agency == agency]
                    transition = lifecycle.recipient_transition(
                        code, party, message.sender, recalled=recalled, doc_type=message.doc_type
                    )
                else:
                    raise Forbidden("only the sender or a recipient may report a status")
                status_id = self.store.insert_status(
                    conn, message.id, agency, code, xml, sha256, status.timestamp, now
                )
                if transition.recall:
                    self.store.mark_recalled(conn, message.id, now)
                elif transition.state or transition.answer:
                    self.store.set_recipient(
                        conn,
                        message.id,
                        agency,
                        now,
                        state=transition.state,
                        answer=transition.answer,
                    )
                self.store.add_deliveries(
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
        return {
            "status_id": status_id,
            "message_id": message.id,
            "code": code,
            "meaning": status.code.meaning[0],
            "received_at": now.isoformat(),
            "delivered_to": list(transition.deliver_to),
            "href": f"/api/v1/messages/{message.id}/statuses/{status_id}",
        }

    # -- push endpoints and dead letters --

    def set_push_endpoint(self, principal: Principal, url: str | None) -> dict[str, Any]:
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
        return {"agency": agency, "url": url}

    def dead_letters(self, principal: Principal) -> list[dict[str, Any]]:
        if not principal.reads_everything:
            raise Forbidden("only administrators and auditors see dead letters")
        return [
            {
                "id": d.id,
                "agency": d.agency,
                "kind": d.kind,
                "message_id": d.message_id,
                "status_id": d.status_id,
                "attempts": d.attempts,
                "since": d.since.isoformat(),
                "dead_at": d.dead_at.isoformat() if d.dead_at else None,
                "last_error": d.last_error,
            }
            for d in self.store.dead_letters()
        ]

    def revive(self, principal: Principal, delivery_id: int) -> dict[str, Any]:
        if principal.role is not Role.ADMIN:
            raise Forbidden("only an administrator may retry a dead letter")
        now = self.clock()
        with self.store.write() as conn:
            if not self.store.revive(conn, delivery_id, now):
                raise UnknownMessage(f"no dead letter {delivery_id}")
            self.audit.append(
                conn,
                events.ADMIN,
                principal.name,
                str(delivery_id),
                {"change": "dead-letter-retried", "delivery": delivery_id},
                now,
            )
        return {"id": delivery_id, "retrying": True}

    # -- audit --

    def audit_events(
        self, principal: Principal, after: int = 0, limit: int = 100
    ) -> list[dict[str, Any]]:
        if not principal.reads_everything:
            raise Forbidden("only auditors and administrators read the audit log")
        return [e.to_dict() for e in self.audit.events(after, min(max(limit, 1), 1000))]


def agency_from_json(code: str, data: dict[str, Any]) -> Agency:
    try:
        return Agency(
            code=code,
            name=str(data["name"]),
            level=str(data["level"]),
            parent=data.get("parent"),
            province=str(data.get("province", "")),
            email=str(data.get("email", "")),
            address=str(data.get("address", "")),
        )
    except (KeyError, TypeError) as exc:
        raise DirectoryError(f"the agency lacks a field: {exc}") from None


__all__ = [
    "Accepted",
    "Relay",
    "agency_from_json",
    "new_message_id",
]
