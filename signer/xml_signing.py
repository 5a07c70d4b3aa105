"""XML signatures as Kyso makes and checks them: XAdES (:mod:`signer.xades`) under edXML's rules.

edXML packages and status messages (QCVN 102:2016, :mod:`signer.edxml`) are validated against
their schema before any signature processing, so an injected extra header is refused before
a signature is looked at (:class:`~signer.errors.InvalidDocument`); a package's signature goes
last in its ``edXMLHeader``; and once its digests verify, every attachment of a package is
compared with the SHA-256 its manifest lists and a changed one is named. Any other XML is
signed and verified as plain XAdES, its signature last in the root.

Verification returns what it verified (as pyHanko's and signxml's results do): a frozen
:class:`~signer.report.Report` and the parsed tree the signature covers. :func:`verify_package`
and :func:`verify_status` read the edXML document from that tree, so a package is parsed and
schema-validated once; callers never parse the signed bytes again.

This is the layer every caller uses for XML. :mod:`signer.xades` knows no document family and
never imports this module or :mod:`signer.edxml` (an import-linter contract says so).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from pyhanko.sign.timestamps import TimeStamper

from certs.keystore import SigningKey

from . import edxml, xades
from .errors import InvalidDocument
from .levels import Level
from .policy import ValidationPolicy
from .report import Report


def _attachment_problems(tree: Any) -> list[str]:
    """One line per attachment whose bytes differ from its manifest's SHA-256."""
    return [str(mismatch) for mismatch in edxml.check_attachments(tree)]


class EdxmlProfile:
    """The :class:`~signer.xades.XmlProfile` of edXML: schema first, attachments after.

    ``kind`` names the one kind of document admitted (None: packages, status messages and
    any other XML)."""

    def __init__(self, kind: edxml.DocumentKind | None = None) -> None:
        self.kind = kind

    def admit(self, tree: Any) -> xades.ContentCheck | None:
        """Validate a package or status message (others pass, unless ``kind`` is set); a
        package's attachments are checked after the signature's digests."""
        kind = edxml.validate(tree)
        if self.kind is not None and kind is not self.kind:
            package = self.kind is edxml.DocumentKind.PACKAGE
            what = "an edXML package" if package else "a status message"
            raise InvalidDocument(f"not {what}: the root element is {tree.getroot().tag}")
        return _attachment_problems if kind is edxml.DocumentKind.PACKAGE else None

    def signature_parent(self, root: Any) -> Any:
        return edxml.signature_parent(root)


EDXML = EdxmlProfile()
PACKAGE = EdxmlProfile(edxml.DocumentKind.PACKAGE)
STATUS = EdxmlProfile(edxml.DocumentKind.STATUS)


@dataclass(frozen=True)
class PackageVerification:
    """The verdict on a signed package, and the package the signature covers.

    ``package`` is read from :attr:`XmlVerification.signed_tree <signer.xades.XmlVerification>`
    (the very tree that was parsed and validated once) and is None unless the signature's
    digests and value verify and every attachment matches its manifest.
    """

    report: Report
    package: edxml.Package | None
    signer_certificate: x509.Certificate | None = None  # set with ``package``


@dataclass(frozen=True)
class StatusVerification:
    """The verdict on a signed status message, and the status the signature covers (None
    unless the signature's digests and value verify)."""

    report: Report
    status: edxml.StatusMessage | None
    signer_certificate: x509.Certificate | None = None  # set with ``status``


async def async_verify_document(
    document: bytes | Any, policy: ValidationPolicy, name: str = "document.xml"
) -> xades.XmlVerification:
    """Verify the XAdES signature of any XML; see :func:`verify_document`."""
    return await xades.async_verify(document, policy, name, profile=EDXML)


def verify_document(
    document: bytes | Any, policy: ValidationPolicy, name: str = "document.xml"
) -> xades.XmlVerification:
    """Verify the one XAdES signature of an XML document, edXML or not, and return what was
    verified with the verdict (see :func:`signer.xades.verify` for ``document``)."""
    return xades.verify(document, policy, name, profile=EDXML)


def verify_package(
    document: bytes | Any, policy: ValidationPolicy, name: str = "package.xml"
) -> PackageVerification:
    """Verify a signed edXML package: parsed once, validated once, read from what was signed.

    ``document`` is the package's bytes or a tree :func:`signer.safexml.parse` returned (a
    multipart package put back together). Anything but a schema-valid package raises
    :class:`InvalidDocument`, a package without a signature :class:`NoSignature`; see
    :func:`verify_xml` for the rest.
    """
    verification = xades.verify(document, policy, name, profile=PACKAGE)
    tree = verification.signed_tree
    return PackageVerification(
        verification.report,
        edxml.read_package(tree) if tree is not None else None,
        verification.signer_certificate,
    )


def verify_status(
    document: bytes | Any, policy: ValidationPolicy, name: str = "status.xml"
) -> StatusVerification:
    """Verify a signed status message, as :func:`verify_package` does a package."""
    verification = xades.verify(document, policy, name, profile=STATUS)
    tree = verification.signed_tree
    return StatusVerification(
        verification.report,
        edxml.read_status(tree) if tree is not None else None,
        verification.signer_certificate,
    )


async def async_verify_xml(
    data: bytes, policy: ValidationPolicy, name: str = "document.xml"
) -> Report:
    """Verify the XAdES signature of ``data``; see :func:`verify_xml`."""
    return (await async_verify_document(data, policy, name)).report


def verify_xml(data: bytes, policy: ValidationPolicy, name: str = "document.xml") -> Report:
    """The verdict on the one XAdES signature of an XML document.

    ``data`` is parsed by :mod:`signer.safexml` (hostile XML raises :class:`HostileXml`),
    edXML packages and status messages are validated against their schema
    (:class:`InvalidDocument`), a document without a signature raises :class:`NoSignature`
    and one with an algorithm Kyso does not accept :class:`UnsupportedFormat` (exit code 2 in
    the CLI). Everything else is a verdict: a :class:`Report` (format ``"XML"``) with one
    ``"XAdES"`` signature report. For a package, every attachment is compared with the SHA-256
    its manifest lists, and a changed one is named.

    To read what was signed, use :func:`verify_document` (or :func:`verify_package`,
    :func:`verify_status`): never the bytes as received.
    """
    return verify_document(data, policy, name).report


async def async_sign_xml(
    data: bytes,
    key: SigningKey,
    *,
    level: Level = Level.B_B,
    timestamper: TimeStamper | None = None,
    signing_time: dt.datetime | None = None,
) -> bytes:
    """Sign ``data`` with an enveloped XAdES signature; see :func:`sign_xml`."""
    return await xades.async_sign_xml(
        data,
        key,
        level=level,
        timestamper=timestamper,
        signing_time=signing_time,
        profile=EDXML,
    )


def sign_xml(
    data: bytes,
    key: SigningKey,
    *,
    level: Level = Level.B_B,
    timestamper: TimeStamper | None = None,
    signing_time: dt.datetime | None = None,
) -> bytes:
    """Sign an XML document (UTF-8 bytes out) with an enveloped XAdES signature.

    ``data`` is parsed by :mod:`signer.safexml`; edXML packages and status messages must be
    valid against their schema, and a package's signature goes last in its ``edXMLHeader``.
    Comments inside the root element are removed first (C14N does not sign them). ``level``
    is B-B or B-T; B-T asks ``timestamper`` for a SignatureTimeStamp. The
    signature value is verified with the certificate's public key before anything is
    returned: a token that signed other bytes, or holds another key than its certificate
    names, raises :class:`SigningFailed`.
    """
    return xades.sign_xml(
        data,
        key,
        level=level,
        timestamper=timestamper,
        signing_time=signing_time,
        profile=EDXML,
    )


__all__ = [
    "EDXML",
    "PACKAGE",
    "STATUS",
    "EdxmlProfile",
    "PackageVerification",
    "StatusVerification",
    "async_sign_xml",
    "async_verify_document",
    "async_verify_xml",
    "sign_xml",
    "verify_document",
    "verify_package",
    "verify_status",
    "verify_xml",
]
