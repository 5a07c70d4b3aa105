"""XAdES enveloped signatures (ETSI EN 319 132) for any XML, with a profile for its family.

What Kyso signs (:func:`sign_xml`) is also the only shape it accepts (:func:`verify_xml`):

* exactly one ``ds:Signature`` in the document, appended to the element the profile names
  (:meth:`XmlProfile.signature_parent`; the root for :data:`PLAIN_XML`);
* ``ds:SignedInfo`` with exclusive C14N, RSA or ECDSA with SHA-256 (384/512 accepted), and
  exactly two references: the whole document (``URI=""`` with the enveloped-signature
  transform, then exclusive C14N) and the XAdES ``SignedProperties`` of this very signature
  (``Type=…#SignedProperties``);
* ``xades:QualifyingProperties`` whose ``Target`` is this signature, holding ``SigningTime``
  and ``SigningCertificateV2``; B-T adds a ``SignatureTimeStamp`` over ``ds:SignatureValue``.

Defences against signature wrapping: only what the references really cover is returned
(:class:`XmlVerification`), never the document as received; partial signatures (``#Id``:
unsigned parts could sit next to signed ones), duplicate ``Id`` values, extra or missing
references, external or XPointer URIs, SignedProperties that are not this signature's own,
and comments inside signed text (C14N does not cover them, yet they change how the text
reads) fail the signature; XSLT/XPath transforms and unknown algorithms are refused as
unsupported input. The profile admits the document first (:meth:`XmlProfile.admit`: a
schema, say, so that an injected extra header is refused before any signature processing) and
may check the signed content after (a manifest's digests). This module knows no document
family: edXML's profile sits above it, in :mod:`signer.xml_signing`, which is what callers use.
Canonical forms come from lxml (libxml2's C14N); ASN.1 from asn1crypto and pyHanko.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from lxml import etree
from pyhanko.sign.general import SigningError
from pyhanko.sign.timestamps import TimeStamper, TimestampRequestError

from certs.aio import run_sync
from certs.keystore import SigningKey

from . import safexml
from .anchors import named
from .cades import (
    VN_TZ,
    check_signer_certificate,
    check_timestamp,
    finish,
    key_strength_problem,
    parse_certificate,
)
from .errors import InvalidDocument, NoSignature, SigningFailed, UnsupportedFormat
from .levels import Level, check_basic_level
from .policy import ValidationPolicy
from .report import (
    FAILED_SUBINDICATIONS,
    CertificateInfo,
    Coverage,
    DocumentFormat,
    Indication,
    Report,
    SignatureFormat,
    SignatureReport,
    SubIndication,
)

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"
# The attributes an element is referenced by (xml:id in its reserved namespace).
ID_ATTRIBUTES = ("Id", "ID", "id", "xml:id")

# Algorithm URIs → hashlib names. Anything else is refused as unsupported (input error).
DIGEST_METHODS = {
    "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512": "sha512",
    "http://www.w3.org/2000/09/xmldsig#sha1": "sha1",  # read, then refused as too weak
}
SIGNATURE_METHODS: dict[str, tuple[str, str]] = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": ("rsa", "sha256"),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": ("rsa", "sha384"),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": ("rsa", "sha512"),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": ("ec", "sha256"),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": ("ec", "sha384"),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": ("ec", "sha512"),
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1": ("rsa", "sha1"),  # refused as too weak
}
WEAK_HASHES = frozenset({"sha1"})
SHA256_URI = "http://www.w3.org/2001/04/xmlenc#sha256"
RSA_SHA256_URI = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256_URI = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
_NCNAME = re.compile(r"^[A-Za-z_][\w.\-]*$")
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

ContentCheck = Callable[[Any], list[str]]
"""Reads a parsed document and names each part whose bytes differ from a digest the document
itself lists (a manifest's): each problem fails the signature with HASH_FAILURE."""


class XmlProfile(Protocol):
    """What a family of XML documents adds to plain XAdES."""

    def admit(self, tree: Any) -> ContentCheck | None:
        """Check the parsed document before any signature processing: raise
        :class:`~signer.errors.InvalidDocument` to refuse it. Returns the check of its signed
        content to run after the digests (None: nothing more to check)."""
        ...

    def signature_parent(self, root: Any) -> Any:
        """The element :func:`sign_xml` appends the enveloped signature to."""
        ...


class _PlainXml:
    """Any XML: admitted as it is, nothing checked in the content, the signature last in the
    root."""

    def admit(self, tree: Any) -> ContentCheck | None:
        return None

    def signature_parent(self, root: Any) -> Any:
        return root


PLAIN_XML: XmlProfile = _PlainXml()


def ds(name: str) -> str:
    return f"{{{DS}}}{name}"


def xades(name: str) -> str:
    return f"{{{XADES}}}{name}"


class _Malformed(Exception):
    """A structural defect of a signature in a well-formed document: FORMAT_FAILURE."""


# --- Canonicalization and references -------------------------------------------------------


@dataclass(frozen=True)
class _C14n:
    """One of the accepted canonicalizations (always without comments)."""

    exclusive: bool = True
    prefixes: tuple[str, ...] = ()

    def apply(self, node: Any) -> bytes:
        try:
            data: bytes = etree.tostring(
                node,
                method="c14n",
                exclusive=self.exclusive,
                with_comments=False,
                inclusive_ns_prefixes=list(self.prefixes) or None,
            )
        except etree.C14NError:
            # libxml2 refuses to canonicalize a relative namespace URI (xmlns="kyso"), as
            # C14N 1.0 allows; without canonical bytes nothing can be signed or verified.
            # Found by tests/test_fuzz_verify.py (an uncaught C14NError before).
            raise InvalidDocument(
                "the XML cannot be canonicalized (C14N): namespace URIs must be absolute"
            ) from None
        return data


INCLUSIVE = _C14n(exclusive=False)
EXCLUSIVE = _C14n(exclusive=True)


def _c14n_method(element: Any) -> _C14n:
    algorithm = element.get("Algorithm")
    if algorithm == C14N_10:
        return INCLUSIVE
    if algorithm == EXC_C14N:
        prefixes: tuple[str, ...] = ()
        inclusive = element.find(f"{{{EXC_C14N}}}InclusiveNamespaces")
        if inclusive is not None:
            prefixes = tuple(inclusive.get("PrefixList", "").split())
        return _C14n(exclusive=True, prefixes=prefixes)
    raise UnsupportedFormat(
        f"unsupported canonicalization {algorithm!r} (Kyso accepts exclusive C14N and "
        "C14N 1.0, without comments)"
    )


@dataclass
class _Reference:
    uri: str
    type: str | None
    target: Any | None  # the referenced element; None: the whole document (URI="")
    enveloped: bool
    c14n: _C14n
    hash_name: str
    digest_value: bytes


def _b64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise _Malformed(f"{what} is not valid base64") from None


def _ids(root: Any) -> dict[str, Any]:
    """Every element that carries an Id; a value used twice is a wrapping attempt."""
    seen: dict[str, Any] = {}
    for attribute in root.xpath(_ID_ATTRIBUTES):
        element = attribute.getparent()
        value = str(attribute)
        if value in seen and seen[value] is not element:
            raise _Malformed(f"duplicate Id {value!r}: two elements claim it")
        seen[value] = element
    return seen


# libxml2 finds the Id attributes (a Python walk over every element cost more than the C14N).
# A string, not a compiled etree.XPath: each call gets its own evaluator, so threads share none.
_ID_ATTRIBUTES = " | ".join(f"//@{name}" for name in ID_ATTRIBUTES)


def _digest_method(parent: Any) -> str:
    method = parent.find(ds("DigestMethod"))
    algorithm = method.get("Algorithm") if method is not None else None
    if algorithm not in DIGEST_METHODS:
        raise UnsupportedFormat(f"unsupported digest algorithm {algorithm!r}")
    return DIGEST_METHODS[algorithm]


def _read_reference(element: Any, ids: dict[str, Any]) -> _Reference:
    uri = element.get("URI")
    if uri is None:
        raise _Malformed("a ds:Reference without URI")
    if uri == "":
        target = None
    elif uri.startswith("#") and _NCNAME.match(uri[1:]):
        target = ids.get(uri[1:])
        if target is None:
            raise _Malformed(f"reference {uri!r} points at no element of the document")
    else:
        raise _Malformed(
            f"reference to {uri!r}: only the document itself or an element of it may be "
            "signed; external and XPointer URIs are never dereferenced"
        )
    transforms_parents = element.findall(ds("Transforms"))
    if len(transforms_parents) > 1:
        raise _Malformed("a ds:Reference with several ds:Transforms")
    transforms = list(transforms_parents[0]) if transforms_parents else []
    enveloped, c14n = False, INCLUSIVE  # XML-DSig: node-sets become octets by C14N 1.0
    for position, transform in enumerate(transforms):
        if not isinstance(transform.tag, str):
            continue
        algorithm = transform.get("Algorithm")
        if transform.tag != ds("Transform"):
            raise _Malformed(f"unexpected {transform.tag} in ds:Transforms")
        if algorithm == ENVELOPED:
            if position != 0 or enveloped:
                raise _Malformed("the enveloped-signature transform must come first, once")
            enveloped = True
        elif algorithm in (EXC_C14N, C14N_10):
            if position != len(transforms) - 1:
                raise _Malformed("canonicalization must be the last transform")
            c14n = _c14n_method(transform)
        else:
            raise UnsupportedFormat(
                f"unsupported transform {algorithm!r}: Kyso accepts only enveloped-signature "
                "and canonicalization (XSLT, XPath and other transforms are refused)"
            )
    value = element.find(ds("DigestValue"))
    return _Reference(
        uri=uri,
        type=element.get("Type"),
        target=target,
        enveloped=enveloped,
        c14n=c14n,
        hash_name=_digest_method(element),
        digest_value=_b64(value.text if value is not None else None, "a DigestValue"),
    )


def _remove_keeping_tail(element: Any) -> None:
    """Remove ``element`` but not the text after it (the enveloped transform removes the
    signature's subtree only)."""
    parent, previous = element.getparent(), element.getprevious()
    if element.tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


@contextlib.contextmanager
def _signature_removed(signature: Any) -> Iterator[None]:
    """The document without ``signature`` for the duration of the block: the signature is
    taken out of the received tree and put back exactly where it was (with the text around
    it), so the tree is left as received."""
    parent, previous = signature.getparent(), signature.getprevious()
    position, tail = parent.index(signature), signature.tail
    text_before = previous.tail if previous is not None else parent.text
    _remove_keeping_tail(signature)
    try:
        yield
    finally:
        if previous is not None:
            previous.tail = text_before
        else:
            parent.text = text_before
        parent.insert(position, signature)
        signature.tail = tail


def _document_without(tree: Any, signature: Any, c14n: _C14n) -> bytes:
    """What ``URI=""`` with the enveloped-signature transform covers: the whole document
    without ``signature``, canonicalized (comments excluded, as for every same-document URI)."""
    with _signature_removed(signature):
        return c14n.apply(tree)


def _is_inside(element: Any, ancestor: Any) -> bool:
    return element is ancestor or any(a is ancestor for a in element.iterancestors())


# --- The signature's parts -----------------------------------------------------------------


@dataclass
class _CertRef:
    hash_name: str
    digest: bytes
    issuer_serial: int | None = None  # the serial number IssuerSerialV2 names
    serial: int | None = None


@dataclass
class _Parts:
    """A signature of Kyso's profile, read but not yet checked cryptographically."""

    signature: Any
    signed_info: Any
    c14n: _C14n
    key_type: str
    hash_name: str
    content: _Reference
    properties: _Reference
    signature_value: Any
    certificates: list[x509.Certificate]
    signing_certificate: list[_CertRef]
    signing_time: dt.datetime | None
    timestamps: list[tuple[_C14n, bytes]] = field(default_factory=list)


def _one(parent: Any, tag: str, what: str) -> Any:
    found = parent.findall(tag)
    if len(found) != 1:
        raise _Malformed(f"expected one {what}, found {len(found)}")
    return found[0]


def _read_parts(tree: Any, signature: Any) -> _Parts:
    if signature.getparent() is None:
        raise _Malformed("the document is only a signature: Kyso verifies enveloped signatures")
    ids = _ids(tree.getroot())
    children = [c for c in signature if isinstance(c.tag, str)]
    tags = [c.tag for c in children]
    if tags[:2] != [ds("SignedInfo"), ds("SignatureValue")] or any(
        t not in (ds("KeyInfo"), ds("Object")) for t in tags[2:]
    ):
        raise _Malformed("ds:Signature must hold SignedInfo, SignatureValue, KeyInfo, Object")
    signed_info = children[0]
    c14n = _c14n_method(_one(signed_info, ds("CanonicalizationMethod"), "CanonicalizationMethod"))
    method = _one(signed_info, ds("SignatureMethod"), "SignatureMethod").get("Algorithm")
    if method not in SIGNATURE_METHODS:
        raise UnsupportedFormat(f"unsupported signature algorithm {method!r}")
    key_type, hash_name = SIGNATURE_METHODS[method]
    references = [_read_reference(r, ids) for r in signed_info.findall(ds("Reference"))]
    properties = [r for r in references if r.type == SIGNED_PROPERTIES_TYPE]
    content = [r for r in references if r.type != SIGNED_PROPERTIES_TYPE]
    if len(properties) != 1:
        raise _Malformed(
            f"not a XAdES signature: {len(properties)} SignedProperties references (one needed)"
        )
    if len(content) != 1:
        raise _Malformed(f"{len(content)} signed-data references; Kyso accepts exactly one")
    if content[0].uri != "":
        # A partial signature lets unsigned parts sit next to signed ones, and an
        # application cannot tell which it reads: only whole-document signatures pass.
        inside = _is_inside(content[0].target, signature)
        where = " (an element inside the signature itself)" if inside else ""
        raise _Malformed(
            f"the signature covers only {content[0].uri}{where}, not the whole document "
            '(Kyso accepts only URI="" with the enveloped-signature transform)'
        )
    if not content[0].enveloped:
        raise _Malformed('a URI="" reference without the enveloped-signature transform')

    qualifying = signature.findall(f"{ds('Object')}/{xades('QualifyingProperties')}")
    if len(qualifying) != 1:
        raise _Malformed(f"expected one xades:QualifyingProperties, found {len(qualifying)}")
    own_id = signature.get("Id")
    if not own_id or qualifying[0].get("Target") != f"#{own_id}":
        raise _Malformed("the QualifyingProperties do not target this signature")
    signed_properties = _one(qualifying[0], xades("SignedProperties"), "SignedProperties")
    if properties[0].target is not signed_properties or properties[0].enveloped:
        raise _Malformed(
            "the SignedProperties reference does not point at this signature's own properties"
        )
    signed_signature = _one(
        signed_properties, xades("SignedSignatureProperties"), "SignedSignatureProperties"
    )
    return _Parts(
        signature=signature,
        signed_info=signed_info,
        c14n=c14n,
        key_type=key_type,
        hash_name=hash_name,
        content=content[0],
        properties=properties[0],
        signature_value=children[1],
        certificates=_key_info_certificates(signature),
        signing_certificate=_certificate_references(signed_signature),
        signing_time=_signing_time(signed_signature),
        timestamps=_timestamps(qualifying[0]),
    )


def _key_info_certificates(signature: Any) -> list[x509.Certificate]:
    found = []
    for element in signature.findall(f"{ds('KeyInfo')}/{ds('X509Data')}/{ds('X509Certificate')}"):
        try:
            # Parsed in full now: a damaged name or extension must not fail path validation.
            found.append(parse_certificate(_b64(element.text, "a certificate")))
        except ValueError:
            raise _Malformed("ds:X509Certificate does not hold a certificate") from None
    return found


def _certificate_references(signed_signature: Any) -> list[_CertRef]:
    found = []
    for version in ("SigningCertificateV2", "SigningCertificate"):
        for cert in signed_signature.findall(f"{xades(version)}/{xades('Cert')}"):
            digest = _one(cert, xades("CertDigest"), "CertDigest")
            ref = _CertRef(
                hash_name=_digest_method(digest),
                digest=_b64(_one(digest, ds("DigestValue"), "DigestValue").text, "CertDigest"),
            )
            v2 = cert.find(xades("IssuerSerialV2"))
            if v2 is not None:
                ref.issuer_serial = _issuer_serial_number(_b64(v2.text, "IssuerSerialV2"))
            v1 = cert.find(f"{xades('IssuerSerial')}/{ds('X509SerialNumber')}")
            if v1 is not None:
                try:
                    ref.serial = int((v1.text or "").strip())
                except ValueError:
                    raise _Malformed("X509SerialNumber is not a number") from None
            found.append(ref)
        if found:
            break
    return found


@functools.lru_cache(maxsize=1024)
def _issuer_serial_number(der: bytes) -> int:
    """The serial number in a DER IssuerSerial, parsed in full (kept per value: a signer's
    IssuerSerialV2 is the same in every document it signs)."""
    try:
        value = tsp.IssuerSerial.load(der)
        value.native  # noqa: B018 - parse all of it now
        serial: int = value["serial_number"].native
    except ValueError:
        raise _Malformed("IssuerSerialV2 is not a DER IssuerSerial") from None
    return serial


def _signing_time(signed_signature: Any) -> dt.datetime | None:
    element = signed_signature.find(xades("SigningTime"))
    if element is None:
        return None
    try:
        moment = dt.datetime.fromisoformat((element.text or "").strip())
    except ValueError:
        raise _Malformed(f"SigningTime {element.text!r} is not an xs:dateTime") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _timestamps(qualifying: Any) -> list[tuple[_C14n, bytes]]:
    found = []
    path = "/".join(
        xades(n)
        for n in ("UnsignedProperties", "UnsignedSignatureProperties", "SignatureTimeStamp")
    )
    for stamp in qualifying.findall(path):
        method = stamp.find(ds("CanonicalizationMethod"))
        c14n = _c14n_method(method) if method is not None else INCLUSIVE
        token = stamp.find(xades("EncapsulatedTimeStamp"))
        if token is not None:
            found.append((c14n, _b64(token.text, "an EncapsulatedTimeStamp")))
    return found


# --- Cryptography --------------------------------------------------------------------------


def _verify_value(
    certificate: x509.Certificate, key_type: str, hash_name: str, value: bytes, data: bytes
) -> bool:
    key = certificate.public_key()
    algorithm = _HASHES[hash_name]()
    try:
        if key_type == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(value, data, padding.PKCS1v15(), algorithm)
            return True
        if key_type == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
            size = (key.curve.key_size + 7) // 8
            if len(value) != 2 * size:
                return False
            r, s = int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(algorithm))
            return True
    except InvalidSignature:
        return False
    return False  # the signature method does not fit the certificate's key


def _identify_signer(
    parts: _Parts, extra: tuple[x509.Certificate, ...]
) -> tuple[x509.Certificate | None, str]:
    """The certificate the signed SigningCertificateV2 names (XAdES binds it to the key)."""
    if not parts.signing_certificate:
        return None, "no SigningCertificateV2 in the signed properties"
    ref = parts.signing_certificate[0]
    for candidate in [*parts.certificates, *extra]:
        if candidate.fingerprint(_HASHES[ref.hash_name]()) != ref.digest:
            continue
        if ref.issuer_serial is not None and ref.issuer_serial != candidate.serial_number:
            return None, "IssuerSerialV2 does not match the signing certificate"
        if ref.serial is not None and ref.serial != candidate.serial_number:
            return None, "IssuerSerial does not match the signing certificate"
        return candidate, ""
    return None, "no certificate matches the digest in SigningCertificateV2"


# --- Verification --------------------------------------------------------------------------


@dataclass
class _Findings:
    """Problems in the order found. The first failure (TOTAL_FAILED) decides the
    sub-indication, else the first problem: a broken signature is broken whatever else."""

    problems: list[tuple[SubIndication, str]] = field(default_factory=list)

    def add(self, sub: SubIndication, detail: str) -> None:
        self.problems.append((sub, detail))

    @property
    def sub(self) -> SubIndication | None:
        failures = [s for s, _ in self.problems if s in FAILED_SUBINDICATIONS]
        candidates = failures or [s for s, _ in self.problems]
        return candidates[0] if candidates else None

    def details(self) -> list[str]:
        """The problems' texts, failures first."""
        ordered = sorted(self.problems, key=lambda p: p[0] not in FAILED_SUBINDICATIONS)
        return [detail for _, detail in ordered]


def _covered_comments(root: Any, signature: Any) -> int:
    return sum(1 for c in root.iter(etree.Comment) if not _is_inside(c, signature))


def _check_integrity(
    tree: Any, parts: _Parts, findings: _Findings, extra: tuple[x509.Certificate, ...]
) -> tuple[bytes, x509.Certificate | None]:
    """Digests, comments, the signer's certificate and the signature value."""
    content = _document_without(tree, parts.signature, parts.content.c14n)
    if hashlib.new(parts.content.hash_name, content).digest() != parts.content.digest_value:
        findings.add(
            SubIndication.HASH_FAILURE,
            f"the signed data (URI={parts.content.uri!r}) was changed after signing",
        )
    properties = parts.properties.c14n.apply(parts.properties.target)
    if hashlib.new(parts.properties.hash_name, properties).digest() != (
        parts.properties.digest_value
    ):
        findings.add(
            SubIndication.HASH_FAILURE,
            "the signed properties (signing time, signing certificate) were changed",
        )
    comments = _covered_comments(tree.getroot(), parts.signature)
    if comments:
        findings.add(
            SubIndication.FORMAT_FAILURE,
            f"{comments} comment(s) inside the signed content: comments are not covered by "
            "the signature and change how its text reads (inserted after signing)",
        )
    weak = {parts.hash_name, parts.content.hash_name, parts.properties.hash_name} & WEAK_HASHES
    if weak:
        findings.add(SubIndication.CRYPTO_CONSTRAINTS_FAILURE, f"weak hash {sorted(weak)[0]}")
    certificate, why = _identify_signer(parts, extra)
    if certificate is None:
        findings.add(SubIndication.NO_SIGNING_CERTIFICATE_FOUND, why)
        return content, None
    value = _b64(parts.signature_value.text, "the SignatureValue")
    signed_info = parts.c14n.apply(parts.signed_info)
    if not _verify_value(certificate, parts.key_type, parts.hash_name, value, signed_info):
        findings.add(
            SubIndication.SIG_CRYPTO_FAILURE,
            "the signature value does not verify with the signing certificate's key",
        )
    strength = key_strength_problem(certificate)
    if strength:
        findings.add(SubIndication.CRYPTO_CONSTRAINTS_FAILURE, strength)
    return content, certificate


def _describe(tree: Any, reference: _Reference, name: str) -> str:
    if reference.target is None:
        return f'{name}: the whole document except its signature (URI="")'
    tag = etree.QName(reference.target).localname
    return f"{name}: {tag} at {tree.getpath(reference.target)} ({reference.uri})"


def _find_signature(tree: Any, name: str) -> Any:
    signatures = list(tree.getroot().iter(ds("Signature")))
    if not signatures:
        raise NoSignature(f"{name} holds no XML signature (ds:Signature)")
    if len(signatures) > 1:
        raise UnsupportedFormat(
            f"{name} holds {len(signatures)} XML signatures; Kyso verifies documents with one"
        )
    return signatures[0]


@dataclass(frozen=True)
class XmlVerification:
    """What :func:`verify` found, and what it verified (as signxml's ``VerifyResult``).

    ``signed_content`` and ``signed_tree`` are set only when the digests and the signature
    value verify (and the profile's content check passes); applications must read the
    document from them, never from the bytes as received. ``signed_content`` is the canonical
    form the digest covers; ``signed_tree`` is the parsed document without its signature,
    which is exactly what those bytes say: the profile admits only whole-document signatures
    (``URI=""`` with the enveloped transform) and a comment inside signed content fails the
    signature, so nothing in the tree is unsigned. Reading it costs no second parse.
    """

    report: Report
    signed_content: bytes | None = field(default=None, repr=False)
    signed_tree: Any | None = field(default=None, repr=False)
    # The certificate the signature value verified with (set with ``signed_tree``): whose
    # it is, the application decides (the relay asks its directory's registrations).
    signer_certificate: x509.Certificate | None = field(default=None, repr=False)


def _received(document: bytes | Any) -> tuple[Any, str]:
    """The parsed document and the SHA-256 of its bytes (a tree is hashed as serialized)."""
    if isinstance(document, bytes):
        return safexml.parse(document), hashlib.sha256(document).hexdigest()
    data = etree.tostring(document, xml_declaration=True, encoding="UTF-8")
    return document, hashlib.sha256(data).hexdigest()


async def async_verify(
    document: bytes | Any,
    policy: ValidationPolicy,
    name: str = "document.xml",
    *,
    profile: XmlProfile,
) -> XmlVerification:
    """Verify the XAdES signature of ``document``; see :func:`verify`."""
    tree, sha256 = _received(document)
    content_check = profile.admit(tree)
    signature = _find_signature(tree, name)
    report = SignatureReport(
        format=SignatureFormat.XADES,
        identifier=signature.get("Id") or "signature-1",
        indication=Indication.TOTAL_PASSED,
    )
    findings = _Findings()
    try:
        parts = _read_parts(tree, signature)
        content, certificate = _check_integrity(tree, parts, findings, policy.extra_certs)
    except _Malformed as exc:
        failed = finish(report.noted(str(exc)), SubIndication.FORMAT_FAILURE)
        return XmlVerification(_verdict(name, sha256, policy, failed))
    report = dataclasses.replace(
        report,
        signed_objects=(
            _describe(tree, parts.content, "signed data"),
            _describe(tree, parts.properties, "signed properties"),
        ),
        coverage=Coverage.ENTIRE_FILE,  # the profile admits only URI="": all but the signature
        claimed_signing_time=parts.signing_time,
        signer=CertificateInfo.of(certificate) if certificate is not None else None,
        level=Level.B_B if parts.signing_time and parts.signing_certificate else None,
    )
    if content_check is not None:
        _check_content(tree, signature, findings, content_check)
    signed = findings.sub is None
    if signed:
        report = await _check_time_and_trust(parts, certificate, policy, report, findings)
    # Problems first, then notes.
    report = finish(report.noted(*findings.details(), first=True), findings.sub)
    verdict = _verdict(name, sha256, policy, report)
    if not signed:
        return XmlVerification(verdict)
    # What the digest covered, and nothing else: the document without its signature.
    _remove_keeping_tail(signature)
    return XmlVerification(
        verdict, signed_content=content, signed_tree=tree, signer_certificate=certificate
    )


def _verdict(name: str, sha256: str, policy: ValidationPolicy, report: SignatureReport) -> Report:
    return Report(name, sha256, DocumentFormat.XML, policy.moment, named((report,), policy.anchors))


async def async_verify_xml(
    data: bytes, policy: ValidationPolicy, name: str = "document.xml", *, profile: XmlProfile
) -> Report:
    """The verdict on the XAdES signature of ``data``; see :func:`verify`."""
    verification = await async_verify(data, policy, name, profile=profile)
    return verification.report


def _check_content(
    tree: Any, signature: Any, findings: _Findings, content_check: ContentCheck
) -> None:
    """Run the profile's check of the content; each problem is a HASH_FAILURE.

    With an intact signature the check reads the signed content, the document without its
    signature (a manifest is then the signed one); with a broken one, the document as
    received still tells what no longer matches.
    """
    with _signature_removed(signature) if findings.sub is None else contextlib.nullcontext():
        problems = content_check(tree)
    for problem in problems:
        findings.add(SubIndication.HASH_FAILURE, problem)


def _imprint(octets: bytes) -> Callable[[str], bytes]:
    """What a SignatureTimeStamp must have stamped, for the hash its TSA chose."""
    return lambda algorithm: hashlib.new(algorithm, octets).digest()


async def _check_time_and_trust(
    parts: _Parts,
    certificate: x509.Certificate | None,
    policy: ValidationPolicy,
    report: SignatureReport,
    findings: _Findings,
) -> SignatureReport:
    """``report`` with its timestamp, chain and revocation; trust problems go to ``findings``."""
    assert certificate is not None
    value = parts.signature_value
    notes: list[str] = []
    proof = None
    for c14n, token in parts.timestamps:
        stamp = await check_timestamp(token, _imprint(c14n.apply(value)), policy)
        notes.append(stamp.detail if stamp.usable else f"{stamp.detail}: ignored")
        if stamp.usable and stamp.time is not None:
            proof = stamp.time
            break
    check = await check_signer_certificate(
        certificate,
        [*parts.certificates, *policy.extra_certs],
        policy,
        claimed_time=parts.signing_time,
        proof_of_existence=proof,
    )
    if check.sub_indication is not None:
        findings.add(check.sub_indication, check.detail or check.sub_indication.value)
    elif check.detail:
        notes.append(check.detail)
    return dataclasses.replace(
        report.noted(*notes),
        timestamp_time=proof if proof is not None else report.timestamp_time,
        level=Level.B_T if report.level and proof is not None else report.level,
        chain=tuple(CertificateInfo.of(c) for c in check.chain),
        revocation=tuple(check.revocation),
    )


def verify(
    document: bytes | Any,
    policy: ValidationPolicy,
    name: str = "document.xml",
    *,
    profile: XmlProfile,
) -> XmlVerification:
    """Verify the one XAdES signature of an XML document of ``profile``'s family.

    ``document`` is bytes, parsed by :mod:`signer.safexml` (hostile XML raises
    :class:`HostileXml`), or a tree :func:`safexml.parse` returned (the caller's own parse,
    which the verification consumes: its signature is removed when it verifies). It is
    admitted by ``profile`` (which may raise :class:`InvalidDocument`); a document without a
    signature raises :class:`NoSignature`, one with an algorithm Kyso does not accept
    :class:`UnsupportedFormat` (exit code 2 in the CLI). Everything else is a verdict: an
    :class:`XmlVerification` whose report (format ``"XML"``) has one ``"XAdES"`` signature.

    Its ``signed_content`` and ``signed_tree`` are what the signature really covers, and only
    when the digests and the signature value verify: applications must read the document
    from there, never from the bytes as received. The profile's content check names what
    differs from the digests the document lists (a package's changed attachment).
    """
    return run_sync(async_verify(document, policy, name, profile=profile))


def verify_xml(
    data: bytes, policy: ValidationPolicy, name: str = "document.xml", *, profile: XmlProfile
) -> Report:
    """The verdict on the one XAdES signature of ``data``; see :func:`verify`."""
    return verify(data, policy, name, profile=profile).report


# --- Signing -------------------------------------------------------------------------------


def _strip_comments(root: Any) -> int:
    """Remove comments inside the root: C14N does not sign them, and Kyso refuses them
    inside signed content (a comment can split signed text)."""
    comments = list(root.iter(etree.Comment))
    for comment in comments:
        _remove_keeping_tail(comment)
    return len(comments)


@functools.lru_cache(maxsize=64)
def _issuer_serial(certificate: x509.Certificate) -> str:
    issuer = asn1_x509.Name.load(certificate.issuer.public_bytes())
    value = tsp.IssuerSerial(
        {
            "issuer": [asn1_x509.GeneralName(name="directory_name", value=issuer)],
            "serial_number": certificate.serial_number,
        }
    )
    return base64.b64encode(value.dump()).decode()


def _sub(parent: Any, tag: str, text: str | None = None, **attributes: str) -> Any:
    element = etree.SubElement(parent, tag, attrib=attributes)
    if text is not None:
        element.text = text
    return element


def _b64text(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _skeleton(
    parent: Any, key: SigningKey, method: str, signing_time: dt.datetime
) -> tuple[Any, Any, Any, Any, Any]:
    """The ds:Signature with empty digests and value, appended to ``parent``."""
    token = uuid.uuid4().hex
    signature_id, properties_id = f"Signature-{token}", f"SignedProperties-{token}"
    reference_id = f"Reference-{token}"
    signature = etree.SubElement(parent, ds("Signature"), nsmap={"ds": DS})
    signature.set("Id", signature_id)
    signed_info = _sub(signature, ds("SignedInfo"))
    _sub(signed_info, ds("CanonicalizationMethod"), Algorithm=EXC_C14N)
    _sub(signed_info, ds("SignatureMethod"), Algorithm=method)
    content = _sub(signed_info, ds("Reference"), Id=reference_id, URI="")
    transforms = _sub(content, ds("Transforms"))
    _sub(transforms, ds("Transform"), Algorithm=ENVELOPED)
    _sub(transforms, ds("Transform"), Algorithm=EXC_C14N)
    _sub(content, ds("DigestMethod"), Algorithm=SHA256_URI)
    content_digest = _sub(content, ds("DigestValue"))
    properties = _sub(
        signed_info, ds("Reference"), Type=SIGNED_PROPERTIES_TYPE, URI=f"#{properties_id}"
    )
    _sub(_sub(properties, ds("Transforms")), ds("Transform"), Algorithm=EXC_C14N)
    _sub(properties, ds("DigestMethod"), Algorithm=SHA256_URI)
    properties_digest = _sub(properties, ds("DigestValue"))
    value = _sub(signature, ds("SignatureValue"), Id=f"SignatureValue-{token}")
    x509_data = _sub(_sub(signature, ds("KeyInfo")), ds("X509Data"))
    for certificate in (key.certificate, *key.chain):
        der = certificate.public_bytes(serialization.Encoding.DER)
        _sub(x509_data, ds("X509Certificate"), _b64text(der))
    qualifying = etree.SubElement(
        _sub(signature, ds("Object")),
        xades("QualifyingProperties"),
        attrib={"Target": f"#{signature_id}"},
        nsmap={"xades": XADES},
    )
    signed_properties = _sub(qualifying, xades("SignedProperties"), Id=properties_id)
    signed_signature = _sub(signed_properties, xades("SignedSignatureProperties"))
    _sub(signed_signature, xades("SigningTime"), signing_time.isoformat())
    cert = _sub(_sub(signed_signature, xades("SigningCertificateV2")), xades("Cert"))
    cert_digest = _sub(cert, xades("CertDigest"))
    _sub(cert_digest, ds("DigestMethod"), Algorithm=SHA256_URI)
    der = key.certificate.public_bytes(serialization.Encoding.DER)
    _sub(cert_digest, ds("DigestValue"), _b64text(hashlib.sha256(der).digest()))
    _sub(cert, xades("IssuerSerialV2"), _issuer_serial(key.certificate))
    data_object = _sub(
        _sub(signed_properties, xades("SignedDataObjectProperties")),
        xades("DataObjectFormat"),
        ObjectReference=f"#{reference_id}",
    )
    _sub(data_object, xades("MimeType"), "text/xml")
    return signature, content_digest, properties_digest, value, qualifying


def _signature_method(certificate: x509.Certificate) -> str:
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return RSA_SHA256_URI
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ECDSA_SHA256_URI
    raise SigningFailed(f"cannot sign XML with a {type(key).__name__}")


async def async_sign_xml(
    data: bytes,
    key: SigningKey,
    *,
    level: Level = Level.B_B,
    timestamper: TimeStamper | None = None,
    signing_time: dt.datetime | None = None,
    profile: XmlProfile,
) -> bytes:
    """Sign ``data`` with an enveloped XAdES signature; see :func:`sign_xml`."""
    check_basic_level(level, timestamper is not None, "XAdES")
    tree = safexml.parse(data)
    root = tree.getroot()
    profile.admit(tree)
    if next(root.iter(ds("Signature")), None) is not None:
        raise UnsupportedFormat("the document is already signed (Kyso adds one XML signature)")
    strength = key_strength_problem(key.certificate)
    if strength:
        raise SigningFailed(f"the signing key is too weak: {strength}")
    method = _signature_method(key.certificate)
    _strip_comments(root)
    # The enveloped transform removes the signature again: the document as it is now, with
    # no signature in it, is exactly what the verifier will digest.
    document_digest = hashlib.sha256(EXCLUSIVE.apply(tree)).digest()
    moment = signing_time or dt.datetime.now(VN_TZ).replace(microsecond=0)
    signature, content_digest, properties_digest, value, qualifying = _skeleton(
        profile.signature_parent(root), key, method, moment
    )
    content_digest.text = _b64text(document_digest)
    signed_properties = qualifying.find(xades("SignedProperties"))
    properties_digest.text = _b64text(hashlib.sha256(EXCLUSIVE.apply(signed_properties)).digest())
    signed_info = EXCLUSIVE.apply(signature.find(ds("SignedInfo")))
    try:
        raw = await key.signer.async_sign_raw(signed_info, "sha256")
    except SigningError as exc:
        raise SigningFailed(f"the key refused to sign: {exc}") from None
    public_key = key.certificate.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        # XML-DSig wants r‖s, each as wide as the curve; CMS signers give DER.
        size = (public_key.curve.key_size + 7) // 8
        r, s = decode_dss_signature(raw)
        raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    key_type, hash_name = SIGNATURE_METHODS[method]
    if not _verify_value(key.certificate, key_type, hash_name, raw, signed_info):
        # An HSM or token that signed other bytes, or holds another key than its certificate
        # names, must fail here, not at the recipient.
        raise SigningFailed(
            "the key's signature does not verify with its certificate (the token signed "
            "other bytes, or its key does not belong to the certificate)"
        )
    value.text = _b64text(raw)
    if level == Level.B_T:
        assert timestamper is not None
        imprint = hashlib.sha256(EXCLUSIVE.apply(value)).digest()
        try:
            token = await timestamper.async_timestamp(imprint, "sha256")
        except (TimestampRequestError, OSError) as exc:
            raise SigningFailed(f"the timestamp authority did not answer: {exc}") from None
        unsigned = _sub(
            _sub(qualifying, xades("UnsignedProperties")), xades("UnsignedSignatureProperties")
        )
        stamp = _sub(unsigned, xades("SignatureTimeStamp"), Id=f"TS-{uuid.uuid4().hex}")
        _sub(stamp, ds("CanonicalizationMethod"), Algorithm=EXC_C14N)
        _sub(stamp, xades("EncapsulatedTimeStamp"), _b64text(token.dump()))
    signed: bytes = etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
    return signed


def sign_xml(
    data: bytes,
    key: SigningKey,
    *,
    level: Level = Level.B_B,
    timestamper: TimeStamper | None = None,
    signing_time: dt.datetime | None = None,
    profile: XmlProfile,
) -> bytes:
    """Sign an XML document (UTF-8 bytes out) with an enveloped XAdES signature.

    ``data`` is parsed by :mod:`signer.safexml` and must be admitted by ``profile``, which
    also says where the signature goes. Comments inside the root element are removed first
    (C14N does not sign them). ``level`` is B-B or B-T; B-T asks ``timestamper`` for
    a SignatureTimeStamp. The signature value is verified with the certificate's public key
    before anything is returned: a token that signed other bytes, or holds another key than
    its certificate names, raises :class:`SigningFailed`.
    """
    return run_sync(
        async_sign_xml(
            data,
            key,
            level=level,
            timestamper=timestamper,
            signing_time=signing_time,
            profile=profile,
        )
    )


__all__ = [
    "PLAIN_XML",
    "ContentCheck",
    "XmlProfile",
    "XmlVerification",
    "async_sign_xml",
    "async_verify",
    "async_verify_xml",
    "sign_xml",
    "verify",
    "verify_xml",
]
