"""The relay's signed receipt: proof of exactly what arrived, and when.

A receipt is an edXML status message (code 01, "đã đến") about the package, signed by the
relay's own key (``private/relay.p12``) with XAdES B-T: the signature timestamp comes from
the PKI's TSA, called in process. Its description carries, in a fixed machine-readable form,
the relay's message id, the SHA-256 of the package bytes as received, the relay's reception
time and the recipients. Anyone holding the receipt can check it with xmlsec1 or Kyso; the
sender keeps it as evidence that the relay received those very bytes.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from certs.keystore import SigningKey
from certs.tsa import InProcessTimeStamper, TimeStampAuthority
from signer import edxml, xml_signing
from signer.levels import Level

RECEIPT_PREFIX = "Trục liên thông đã nhận gói tin (đã đến)."
_FIELD = re.compile(r"(MessageId|PackageSHA256|ReceivedAt|Recipients)=([^;]+)")
MAX_DESCRIPTION = 2000


@dataclass(frozen=True)
class ReceiptInfo:
    """What a receipt says, read back from its (verified) content."""

    message_id: str
    package_sha256: str
    received_at: dt.datetime
    recipients: tuple[str, ...]
    status: edxml.StatusMessage


class ReceiptSigner:
    """Builds and signs receipts with the relay's key."""

    def __init__(self, key: SigningKey, tsa: TimeStampAuthority, relay: edxml.Organization) -> None:
        self.key = key
        self.timestamper = InProcessTimeStamper(tsa)
        self.relay = relay

    def sign(
        self,
        message_id: str,
        package: edxml.Package,
        package_sha256: str,
        received_at: dt.datetime,
        recipients: tuple[str, ...],
    ) -> bytes:
        listed = ",".join(recipients)
        description = (
            f"{RECEIPT_PREFIX} MessageId={message_id}; PackageSHA256={package_sha256}; "
            f"ReceivedAt={received_at.isoformat()}; Recipients={listed}"
        )
        if len(description) > MAX_DESCRIPTION:
            description = description[: description.rindex("; Recipients=")]
        return self.sign_status(package, edxml.StatusCode.ARRIVED, description, received_at)

    def sign_status(
        self, package: edxml.Package, code: edxml.StatusCode, description: str, at: dt.datetime
    ) -> bytes:
        """A status of the relay's own about ``package`` (its receipt, or the end of its
        verification), signed as a receipt is."""
        status = edxml.StatusMessage(
            response_for=edxml.ResponseFor(
                organ_id=package.sender.organ_id,
                code=f"{package.code.number}/{package.code.notation}",
                promulgation_date=package.promulgation_date,
                document_id=package.document_id,
            ),
            sender=self.relay,
            code=code,
            timestamp=at,
            description=description[:MAX_DESCRIPTION],
            staff=edxml.StaffInfo(department="Trục liên thông văn bản Kyso"),
        )
        return xml_signing.sign_xml(
            edxml.build_status(status),
            self.key,
            level=Level.B_T,
            timestamper=self.timestamper,
            signing_time=at.astimezone(edxml.VN_TZ),
        )


def read_receipt(signed_content: bytes) -> ReceiptInfo:
    """The fields of a receipt, from the content its verified signature covers."""
    status = edxml.parse_status(signed_content)
    fields = dict(_FIELD.findall(status.description))
    missing = {"MessageId", "PackageSHA256", "ReceivedAt"} - set(fields)
    if status.code is not edxml.StatusCode.ARRIVED or missing:
        raise ValueError(f"not a Kyso receipt (missing {', '.join(sorted(missing))})")
    recipients = tuple(r for r in fields.get("Recipients", "").strip().split(",") if r)
    return ReceiptInfo(
        message_id=fields["MessageId"].strip(),
        package_sha256=fields["PackageSHA256"].strip(),
        received_at=dt.datetime.fromisoformat(fields["ReceivedAt"].strip()),
        recipients=recipients,
        status=status,
    )
