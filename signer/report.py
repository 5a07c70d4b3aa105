"""One validation report for PDF, XML and CMS signatures.

Indications and sub-indications are those of ETSI EN 319 102-1; the CLI text, the JSON
(``schemas/report.schema.json``) and the web page are three views of the same dataclasses.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from certs.subject import SubjectInfo
from directory import AGENCY_CODE

from .levels import Level

REPORT_VERSION = 1


class Indication(StrEnum):
    TOTAL_PASSED = "TOTAL_PASSED"
    INDETERMINATE = "INDETERMINATE"
    TOTAL_FAILED = "TOTAL_FAILED"


class SubIndication(StrEnum):
    """ETSI EN 319 102-1 sub-indications (clause 5.1.3) that Kyso reports."""

    FORMAT_FAILURE = "FORMAT_FAILURE"
    HASH_FAILURE = "HASH_FAILURE"
    SIG_CRYPTO_FAILURE = "SIG_CRYPTO_FAILURE"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    SIG_CONSTRAINTS_FAILURE = "SIG_CONSTRAINTS_FAILURE"
    CHAIN_CONSTRAINTS_FAILURE = "CHAIN_CONSTRAINTS_FAILURE"
    CERTIFICATE_CHAIN_GENERAL_FAILURE = "CERTIFICATE_CHAIN_GENERAL_FAILURE"
    CRYPTO_CONSTRAINTS_FAILURE = "CRYPTO_CONSTRAINTS_FAILURE"
    POLICY_PROCESSING_ERROR = "POLICY_PROCESSING_ERROR"
    TIMESTAMP_ORDER_FAILURE = "TIMESTAMP_ORDER_FAILURE"
    NO_SIGNING_CERTIFICATE_FOUND = "NO_SIGNING_CERTIFICATE_FOUND"
    NO_CERTIFICATE_CHAIN_FOUND = "NO_CERTIFICATE_CHAIN_FOUND"
    REVOKED_NO_POE = "REVOKED_NO_POE"
    REVOKED_CA_NO_POE = "REVOKED_CA_NO_POE"
    OUT_OF_BOUNDS_NO_POE = "OUT_OF_BOUNDS_NO_POE"
    OUT_OF_BOUNDS_NOT_REVOKED = "OUT_OF_BOUNDS_NOT_REVOKED"
    CRYPTO_CONSTRAINTS_FAILURE_NO_POE = "CRYPTO_CONSTRAINTS_FAILURE_NO_POE"
    NO_POE = "NO_POE"
    TRY_LATER = "TRY_LATER"
    SIGNED_DATA_NOT_FOUND = "SIGNED_DATA_NOT_FOUND"
    GENERIC = "GENERIC"


# Which sub-indications are failures (TOTAL_FAILED) rather than INDETERMINATE (clause 5.1.3).
FAILED_SUBINDICATIONS = frozenset(
    {
        SubIndication.FORMAT_FAILURE,
        SubIndication.HASH_FAILURE,
        SubIndication.SIG_CRYPTO_FAILURE,
        SubIndication.REVOKED,
        SubIndication.EXPIRED,
        SubIndication.NOT_YET_VALID,
    }
)


def indication_for(sub: SubIndication | None) -> Indication:
    """The indication a sub-indication implies (``None`` means everything passed)."""
    if sub is None:
        return Indication.TOTAL_PASSED
    return Indication.TOTAL_FAILED if sub in FAILED_SUBINDICATIONS else Indication.INDETERMINATE


@dataclass(frozen=True)
class CertificateInfo:
    """What an auditor needs to know about one certificate."""

    subject: str
    common_name: str
    organization: str | None
    agency_code: str | None
    issuer: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str
    # What the subject says of its holder (tax code, citizen id, organisation, title…).
    subject_info: SubjectInfo = dataclasses.field(default_factory=SubjectInfo)

    @classmethod
    def of(cls, certificate: x509.Certificate) -> CertificateInfo:
        """The description of ``certificate`` (kept per certificate: the same agency seals
        sign thousands of documents, and formatting their names is not free)."""
        return _describe_certificate(certificate)


@functools.lru_cache(maxsize=1024)
def _describe_certificate(certificate: x509.Certificate) -> CertificateInfo:
    def first(oid: x509.ObjectIdentifier) -> str | None:
        values = certificate.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else None

    return CertificateInfo(
        subject=certificate.subject.rfc4514_string(),
        common_name=first(NameOID.COMMON_NAME) or certificate.subject.rfc4514_string(),
        organization=first(NameOID.ORGANIZATION_NAME),
        # Kyso's CA writes the agency code in UID; other CAs write MST:…, CCCD:… there.
        agency_code=next(
            (
                str(a.value)
                for a in certificate.subject.get_attributes_for_oid(NameOID.USER_ID)
                if AGENCY_CODE.match(str(a.value))
            ),
            None,
        ),
        issuer=certificate.issuer.rfc4514_string(),
        serial=format(certificate.serial_number, "X"),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        sha256=certificate.fingerprint(hashes.SHA256()).hex(),
        subject_info=SubjectInfo.of(certificate),
    )


@dataclass(frozen=True)
class RevocationEvidence:
    """One revocation answer used in validation, and where it came from."""

    kind: str  # "OCSP" or "CRL"
    source: str  # "embedded" (in the signature / DSS), "fetched" (online), "supplied"
    certificate_serial: str
    status: str  # "good", "revoked", "unknown"
    produced_at: dt.datetime | None = None
    url: str | None = None
    issuer: str | None = None  # the CA whose certificates the answer is about


@dataclass(frozen=True)
class Change:
    """What one later revision of a PDF changed, judged against what the signature allows."""

    revision: int
    allowed: bool
    description: str


class SignatureFormat(StrEnum):
    """The AdES family of one signature."""

    PADES = "PAdES"
    XADES = "XAdES"
    CADES = "CAdES"


class DocumentFormat(StrEnum):
    """What kind of file a report is about."""

    PDF = "PDF"
    XML = "XML"
    CMS = "CMS"


class Coverage(StrEnum):
    """What part of the file a signature covers."""

    ENTIRE_FILE = "ENTIRE_FILE"
    ENTIRE_REVISION = "ENTIRE_REVISION"  # a PDF revision that later ones extend
    PARTIAL = "PARTIAL"
    UNCLEAR = "UNCLEAR"


@dataclass(frozen=True)
class SignatureReport:
    """The verdict on one signature (immutable: verifiers build it with
    :func:`dataclasses.replace` and :meth:`noted`, then :meth:`finished`)."""

    format: SignatureFormat
    identifier: str  # PDF field name, XML signature Id, or CMS signer index
    indication: Indication
    sub_indication: SubIndication | None = None
    level: Level | None = None
    signer: CertificateInfo | None = None
    chain: tuple[CertificateInfo, ...] = ()
    claimed_signing_time: dt.datetime | None = None
    timestamp_time: dt.datetime | None = None
    revocation: tuple[RevocationEvidence, ...] = ()
    coverage: Coverage | None = None
    changes: tuple[Change, ...] = ()
    signed_objects: tuple[str, ...] = ()  # what the signature covers
    details: tuple[str, ...] = ()  # findings, most important first
    explanation_vi: str = ""
    explanation_en: str = ""
    # The trust-store entries of the signer's chain, its issuer first and the root last
    # (signer.anchors; empty: no chain to a trusted root, or no trust store was given).
    issuer_path: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.indication is Indication.TOTAL_PASSED

    def noted(self, *details: str, first: bool = False) -> SignatureReport:
        """This report with ``details`` after its own (before them with ``first``)."""
        ordered = (*details, *self.details) if first else (*self.details, *details)
        return dataclasses.replace(self, details=ordered)

    def finished(self, sub: SubIndication | None) -> SignatureReport:
        """This report with ``sub`` and the indication it implies (explanations are the
        business of :func:`signer.explain.with_explanation`)."""
        return dataclasses.replace(self, sub_indication=sub, indication=indication_for(sub))


@dataclass(frozen=True)
class Report:
    """The verdict on one document: one :class:`SignatureReport` per signature."""

    document: str
    document_sha256: str
    format: DocumentFormat
    validation_time: dt.datetime
    signatures: tuple[SignatureReport, ...] = ()
    problems: tuple[str, ...] = ()  # document-level findings

    @property
    def passed(self) -> bool:
        """True only when there is at least one signature and every one is TOTAL_PASSED."""
        return bool(self.signatures) and all(s.passed for s in self.signatures)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form documented by ``schemas/report.schema.json``."""
        data = _plain(dataclasses.asdict(self))
        data["version"] = REPORT_VERSION
        data["passed"] = self.passed
        return data


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    return value
