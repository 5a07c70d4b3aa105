"""XML signatures as Kyso makes and checks them: XAdES (:mod:`signer.xades`) under edXML's rules.

edXML packages and status messages (QCVN 102:2016, :mod:`signer.edxml`) are validated against
their schema before any signature processing, so an injected extra header is refused before
a signature is looked at (:class:`~signer.errors.InvalidDocument`); a package's signature goes
last in its ``edXMLHeader``; and once its digests verify, every attachment of a package is
compared with the SHA-256 its manifest lists and a changed one is named. Any other XML is
signed and verified as plain XAdES, its signature last in the root.

This is the layer every caller uses for XML. :mod:`signer.xades` knows no document family and
never imports this module or :mod:`signer.edxml` (an import-linter contract says so).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyhanko.sign.timestamps import TimeStamper

from certs.keystore import SigningKey

from . import edxml, xades
from .policy import ValidationPolicy
from .report import Report


def _attachment_problems(tree: Any) -> list[str]:
    """One line per attachment whose bytes differ from its manifest's SHA-256."""
    return [str(mismatch) for mismatch in edxml.check_attachments(tree)]


class EdxmlProfile:
    """The :class:`~signer.xades.XmlProfile` of edXML: schema first, attachments after."""

    def admit(self, tree: Any) -> xades.ContentCheck | None:
        """Validate a package or status message (others pass); a package's attachments are
        checked after the signature's digests."""
        kind = edxml.validate(tree)
        return _attachment_problems if kind is edxml.DocumentKind.PACKAGE else None

    def signature_parent(self, root: Any) -> Any:
        return edxml.signature_parent(root)


EDXML = EdxmlProfile()


async def async_verify_xml(
    data: bytes, policy: ValidationPolicy, name: str = "document.xml"
) -> Report:
    """Verify the XAdES signature of ``data``; see :func:`verify_xml`."""
    return await xades.async_verify_xml(data, policy, name, profile=EDXML)


def verify_xml(data: bytes, policy: ValidationPolicy, name: str = "document.xml") -> Report:
    """Verify the one XAdES signature of an XML document.

    ``data`` is parsed by :mod:`signer.safexml` (hostile XML raises :class:`HostileXml`),
    edXML packages and status messages are validated against their schema
    (:class:`InvalidDocument`), and a document without a signature, or with an algorithm
    Kyso does not accept, raises too (exit code 2 in the CLI). Everything else is a verdict:
    a :class:`Report` (format ``"XML"``) with one ``"XAdES"`` signature report.

    ``Report.signed_content`` holds the canonical bytes the signature really covers (the
    document without its signature for ``URI=""``), and only when the digests and the
    signature value verify: applications must read the document from there, never from
    the bytes as received. For a package, every attachment is compared with the SHA-256
    its manifest lists, and a changed one is named.
    """
    return xades.verify_xml(data, policy, name, profile=EDXML)


async def async_sign_xml(
    data: bytes,
    key: SigningKey,
    *,
    level: str = "B-B",
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
    level: str = "B-B",
    timestamper: TimeStamper | None = None,
    signing_time: dt.datetime | None = None,
) -> bytes:
    """Sign an XML document (UTF-8 bytes out) with an enveloped XAdES signature.

    ``data`` is parsed by :mod:`signer.safexml`; edXML packages and status messages must be
    valid against their schema, and a package's signature goes last in its ``edXMLHeader``.
    Comments inside the root element are removed first (C14N does not sign them). ``level``
    is ``"B-B"`` or ``"B-T"``; B-T asks ``timestamper`` for a SignatureTimeStamp. The
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


__all__ = ["EDXML", "EdxmlProfile", "async_sign_xml", "async_verify_xml", "sign_xml", "verify_xml"]
