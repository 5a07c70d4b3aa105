"""The relay's intake: accept a signed package and answer it with a signed receipt.

Accepting a package is, in order: size → idempotency (same key, or same bytes from the same
sender: the stored receipt, nothing new) → reassemble multipart parts → schema and XAdES
signature (``signer.xades``: a chain to the trust store, unrevoked) → the signer's certificate
is registered in the directory as the seal of the authenticated agency, which is also the
package's ``From`` → routing → every PDF attachment's
signatures → files written and fsynced → receipt signed (relay key, TSA timestamp) → one
database transaction (message, attachments, recipients, deliveries, audit row) → answer.
Nothing is acknowledged before it is durable, and nothing of a refused package is stored
but the refusal in the audit log.

A package whose signature (or a PDF's) cannot be decided for want of revocation information
(INDETERMINATE/TRY_LATER) is, under the ``pending`` policy of
:attr:`RelayConfig.unreachable_responder`, stored and receipted like any but held in
"verification pending", owed to no recipient until :mod:`exchange.pending` decides it.

The relay's other use cases are beside it, each taking the authenticated
:class:`~exchange.auth.Principal` and deciding on its own what the caller may see (another
agency's messages do not exist for it: 404): :mod:`exchange.messages` (reading),
:mod:`exchange.statuses` (the lifecycle), :mod:`exchange.mailbox` (inbox, push, dead
letters), :mod:`exchange.administration` (the directory), :mod:`exchange.trail` (the
trail and the audit log). They return records; :mod:`exchange.views` makes them JSON.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cryptography import x509

from certs.clock import utcnow
from certs.store import CertificateStore
from directory import Directory
from directory.certificates import AmbiguousRegistration, CertificateRegistry, Role
from signer import edxml, xml_signing
from signer.errors import DocumentTooLarge, NoSignature, SignerError
from signer.pdf_input import looks_like_pdf
from signer.pdf_verify import verify_pdf
from signer.report import Report, SubIndication

from . import audit as events
from .audit import AuditLog
from .auth import Principal
from .blobs import BlobStore
from .config import RelayConfig, UnreachableResponder
from .errors import (
    BadRequest,
    CertificateRefused,
    ExchangeError,
    IdempotencyConflict,
    InvalidPackage,
    PackageTooLarge,
    RoutingDenied,
    SenderMismatch,
    SignatureRejected,
    UnsignedDocument,
)
from .message_store import (
    PENDING,
    VERIFIED,
    AttachmentRecord,
    MessageRecord,
    MessageStore,
    NewMessage,
)
from .receipts import ReceiptSigner
from .routing import RoutingRules
from .trust import Trust
from .wire import reassemble_tree

REVOKED_SUBINDICATIONS = frozenset(
    {SubIndication.REVOKED, SubIndication.REVOKED_NO_POE, SubIndication.REVOKED_CA_NO_POE}
)
MAX_IDEMPOTENCY_KEY = 200


def new_message_id() -> str:
    """32 hex digits, time-ordered (milliseconds first), unguessable."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(10)}"


@dataclass(frozen=True)
class PackageCheck:
    """A package whose signature (and every signed PDF's) passed, or is held: it could not
    be decided for want of revocation information (INDETERMINATE/TRY_LATER) and the relay's
    policy holds such packages ("verification pending", see :mod:`exchange.pending`)."""

    package: edxml.Package
    signer_serial: str  # of a held package: the certificate that signed it, not yet checked
    held: bool = False
    reason: str | None = None  # why it is held


@dataclass(frozen=True)
class Accepted:
    """The answer to a send: the message and its signed receipt."""

    message: MessageRecord
    created: bool  # False: a repeated send, answered with the stored receipt

    @property
    def receipt_xml(self) -> bytes:
        return self.message.receipt_xml


class Relay:
    """The relay's intake: a signed package in, a signed receipt out (see the module doc).

    ``store`` and ``audit`` share the relay's one write transaction; ``directory`` answers
    the current directory of agencies (the administration's, briefly cached).
    """

    def __init__(
        self,
        store: MessageStore,
        audit: AuditLog,
        blobs: BlobStore,
        trust: Trust,
        receipts: ReceiptSigner,
        routing: RoutingRules,
        certificates: CertificateStore,
        config: RelayConfig,
        directory: Callable[[], Directory],
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.engine = store.engine
        self.store = store
        self.audit = audit
        self.blobs = blobs
        self.trust = trust
        self.receipts = receipts
        self.routing = routing
        self.certificates = certificates
        self.config = config
        self.directory = directory
        self.clock = clock

    # -- verification shared by packages and statuses --

    def _verify_package(self, document: bytes | Any, agency: str) -> PackageCheck:
        """The package the signature covers, parsed and validated once (``document``: the
        bytes as received, or the tree :func:`~exchange.wire.reassemble_tree` put together),
        and the serial number of its signer's certificate; or the package held, see
        :meth:`_awaits_revocation`."""
        name = "the package"
        try:
            verification = xml_signing.verify_package(document, self.trust.policy(), name)
        except SignerError as exc:
            raise self._refusal(name, exc) from None
        package, report = verification.package, verification.report
        reason = self._awaits_revocation(report)
        if package is not None and reason is not None:
            [signature] = report.signatures
            serial = signature.signer.serial if signature.signer is not None else ""
            return PackageCheck(package, serial, held=True, reason=f"{name}: {reason}")
        serial = self._signer_serial(
            report, verification.signer_certificate, package is not None, name, agency
        )
        assert package is not None  # a passed verdict without a package was refused
        return PackageCheck(package, serial)

    def _awaits_revocation(self, report: Report) -> str | None:
        """Why ``report`` is undecided for want of revocation information only (every
        signature passed or is INDETERMINATE/TRY_LATER), when the policy holds such
        packages; None when the report decides (passed, or a refusal)."""
        if self.config.unreachable_responder is not UnreachableResponder.PENDING:
            return None
        waiting = [s for s in report.signatures if not s.passed]
        if not waiting or any(s.sub_indication is not SubIndication.TRY_LATER for s in waiting):
            return None
        details = "; ".join(waiting[0].details[:2])
        return f"revocation information is unavailable ({details or SubIndication.TRY_LATER})"

    @functools.cached_property
    def registry(self) -> CertificateRegistry:
        """Which certificates are which agency's (the directory's registrations)."""
        return CertificateRegistry(self.engine)

    def _signer_serial(
        self,
        report: Report,
        certificate: x509.Certificate | None,
        signed: bool,
        name: str,
        agency: str,
    ) -> str:
        """The signer's serial, once the verdict passed (a chain to the trust store, not
        revoked) and the signer's ``certificate`` is registered as ``agency``'s seal; else
        the refusal."""
        [signature] = report.signatures
        if not report.passed or not signed or signature.signer is None or certificate is None:
            why = "; ".join(signature.details[:3]) or str(signature.sub_indication)
            extensions = {"report": report.to_dict()}
            if signature.sub_indication in REVOKED_SUBINDICATIONS:
                raise CertificateRefused(f"{name}: the signing certificate is revoked", extensions)
            raise SignatureRejected(
                f"{name}: the signature is not valid ({signature.sub_indication}: {why})",
                extensions,
            )
        self._check_registered(certificate, name, agency)
        self._check_kyso_record(certificate, name, agency)
        return signature.signer.serial

    def _check_registered(self, certificate: x509.Certificate, name: str, agency: str) -> None:
        """Refuse unless the directory registers ``certificate`` as ``agency``'s seal now."""
        described = f"{certificate.subject.rfc4514_string()}, serial {certificate.serial_number:X}"
        try:
            registration = self.registry.agency_of(certificate, self.clock())
        except AmbiguousRegistration as exc:
            raise CertificateRefused(f"{name}: {exc}") from None
        if registration is None:
            raise CertificateRefused(
                f"{name}: the signing certificate ({described}) is not registered to any "
                "agency in the directory"
            )
        if registration.agency != agency:
            raise SenderMismatch(
                f"{name} is signed with a certificate of {registration.agency} "
                f"({described}), not of {agency}"
            )
        if registration.role is not Role.SEAL:
            raise CertificateRefused(
                f"{name}: the signing certificate ({described}) is registered to {agency} as "
                f"{registration.role.value}, not as its seal"
            )

    def _check_kyso_record(self, certificate: x509.Certificate, name: str, agency: str) -> None:
        """A certificate Kyso's CA issued is refused as soon as its record is revoked (the
        CRLs the validator holds may be a few seconds old)."""
        record = self.certificates.find_certificate(certificate)
        if record is not None and record.revoked:
            raise CertificateRefused(
                f"{name}: the signing certificate {record.serial:X} of {agency} is revoked "
                f"({record.revocation_reason})"
            )

    @staticmethod
    def _refusal(name: str, exc: SignerError) -> ExchangeError:
        """The relay's answer to a document the verification could not read."""
        if isinstance(exc, DocumentTooLarge):
            return PackageTooLarge(str(exc))
        if isinstance(exc, NoSignature):
            return UnsignedDocument(f"{name} is not signed: {exc}")
        return InvalidPackage(f"{name}: {exc}")

    def _check_pdfs(self, package: edxml.Package) -> str | None:
        """Refuse the package unless every PDF attachment is validly signed; why it is held
        if some PDF is undecided for want of revocation information (else None)."""
        held = None
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
            reason = self._awaits_revocation(report)
            if reason is not None:
                held = held or f"PDF attachment {attachment.name!r}: {reason}"
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
        return held

    def check_held(self, message: MessageRecord, document: bytes | Any) -> PackageCheck:
        """Verify a held package again, as the intake did (signature, then the signer's
        registration, then the PDFs): passed, still held, or the refusal raised."""
        check = self._verify_package(document, message.sender)
        if check.held:
            return check
        held = self._check_pdfs(check.package)
        if held is not None:
            return PackageCheck(check.package, check.signer_serial, held=True, reason=held)
        return check

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
        check = self._verify_package(document, agency)
        package, signer_serial = check.package, check.signer_serial
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
        held = self._check_pdfs(package)
        held = check.reason if check.held else held

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
                verification=VERIFIED if held is None else PENDING,
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
                if held is not None:
                    self.audit.append(
                        conn,
                        events.VERIFICATION_PENDING,
                        "relay",
                        message_id,
                        {"reason": held[:500], "recipients": list(recipients)},
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

    # -- what the status lifecycle shares with the intake --

    def verify_status(self, document: bytes, agency: str) -> edxml.StatusMessage:
        """The status ``document`` carries, signed by ``agency``: verified as a package is (the
        checks, in order, of the module doc), parsed and validated once; raise the same
        refusals."""
        name = "the status"
        try:
            verification = xml_signing.verify_status(document, self.trust.policy(), name)
        except SignerError as exc:
            raise self._refusal(name, exc) from None
        status = verification.status
        self._signer_serial(
            verification.report, verification.signer_certificate, status is not None, name, agency
        )
        assert status is not None  # a passed verdict without a status was refused
        return status

    def reject(
        self, principal: Principal, what: str, sha256: str, size: int, exc: ExchangeError
    ) -> None:
        """Record a refused submission in the audit log, as a refused package is."""
        self._reject(principal, what, sha256, size, exc)


__all__ = [
    "Accepted",
    "PackageCheck",
    "Relay",
    "new_message_id",
]
