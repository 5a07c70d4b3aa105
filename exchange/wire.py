"""The relay's wire format, shared by the relay and its clients: nothing here holds state.

* **Request signatures.** Every request carries ::

      Authorization: Kyso-HMAC-SHA256 Credential=ak_…, Timestamp=UNIX, Nonce=N, Signature=HEX

  where the signature is HMAC-SHA256 with the credential's secret over
  :func:`canonical_request`. The client makes it (:func:`sign_request`); the relay
  (:mod:`exchange.auth`) recomputes it over the same canonical string.
* **Multipart packages.** A large signed package travels as its XML with empty attachment
  contents plus one part per attachment (:func:`detach`); the relay puts the parts back
  (:func:`reassemble`) before checking the signature over exactly what was signed.

An agency's client imports this module and never the relay's: no database, no Flask.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from typing import Any

from lxml import etree

from signer import edxml, safexml

from .errors import InvalidPackage, PackageTooLarge

SCHEME = "Kyso-HMAC-SHA256"


def body_digest(body: bytes) -> str:
    """The SHA-256 of a request body, hex: what the signature says about the body."""
    return hashlib.sha256(body).hexdigest()


def canonical_request(
    method: str, path: str, query: str, timestamp: str, nonce: str, digest: str
) -> bytes:
    """What the request signature covers, one field a line."""
    return "\n".join([SCHEME, method.upper(), path, query, timestamp, nonce, digest]).encode()


def sign_request(
    key_id: str,
    secret: str,
    method: str,
    path: str,
    query: str,
    body: bytes,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> str:
    """The ``Authorization`` header value for one request (used by clients and tests)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_urlsafe(18)
    message = canonical_request(method, path, query, stamp, nonce, body_digest(body))
    signature = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{SCHEME} Credential={key_id}, Timestamp={stamp}, Nonce={nonce}, Signature={signature}"


def _q(name: str) -> str:
    return edxml.q(name)


def reassemble(xml: bytes, parts: Sequence[bytes]) -> bytes:
    """The package :func:`reassemble_tree` puts back together, as UTF-8 bytes."""
    data: bytes = etree.tostring(
        reassemble_tree(xml, parts), xml_declaration=True, encoding="UTF-8"
    )
    return data


def reassemble_tree(xml: bytes, parts: Sequence[bytes]) -> Any:
    """Put multipart attachments back into the package they were signed in (parsed once).

    A package sent as multipart keeps every ``Attachment`` element but leaves its
    ``ContentTransferEncoded`` empty; each part is matched to the manifest entry whose
    SHA-256 it has and its base64 (unwrapped, as Kyso signs it) goes back in place, so that
    the signature is checked over exactly what was signed. A part or an empty attachment
    that finds no partner raises :class:`~exchange.errors.InvalidPackage`; a package that
    would grow over the XML size limit, :class:`~exchange.errors.PackageTooLarge`. Returns
    the tree :func:`signer.safexml.parse` made, which the verification reads as it is.
    """
    tree = safexml.parse(xml)
    root = tree.getroot()
    digests = {
        (ref.findtext(_q("ContentId")) or ""): (ref.findtext(_q("Digest")) or "").strip().lower()
        for ref in root.iterfind(
            f"{_q('edXMLEnvelope')}/{_q('edXMLBody')}/{_q('edXMLManifest')}/{_q('Reference')}"
        )
    }
    by_digest = {hashlib.sha256(part).hexdigest(): part for part in parts}
    used: set[str] = set()
    size = len(xml)
    for attachment in root.iterfind(f"{_q('AttachmentEncoded')}/{_q('Attachment')}"):
        encoded = attachment.find(_q("ContentTransferEncoded"))
        if encoded is None or (encoded.text or "").strip():
            continue
        content_id = attachment.findtext(_q("ContentId")) or ""
        digest = digests.get(content_id)
        if digest is None or digest not in by_digest:
            raise InvalidPackage(
                f"attachment {content_id!r} is empty and no part has the SHA-256 its manifest lists"
            )
        encoded.text = base64.b64encode(by_digest[digest]).decode()
        size += len(encoded.text)
        used.add(digest)
    extra = sorted(set(by_digest) - used)
    if extra:
        raise InvalidPackage(f"part with SHA-256 {extra[0]} matches no empty attachment")
    if size > safexml.MAX_XML_BYTES:
        # The limit safexml.parse puts on a package sent inline holds for one put together.
        raise PackageTooLarge(
            f"the package put together is {size} bytes, over the XML limit of "
            f"{safexml.MAX_XML_BYTES} bytes"
        )
    return tree


def detach(signed_package: bytes) -> tuple[bytes, list[bytes]]:
    """The multipart form of a signed package: the XML with empty attachment contents, and
    the attachments' bytes (what :func:`reassemble` puts back)."""
    tree = safexml.parse(signed_package)
    parts = []
    for attachment in tree.getroot().iterfind(f"{_q('AttachmentEncoded')}/{_q('Attachment')}"):
        encoded = attachment.find(_q("ContentTransferEncoded"))
        if encoded is not None and (encoded.text or "").strip():
            parts.append(base64.b64decode("".join(encoded.text.split())))
            encoded.text = ""
    data: bytes = etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
    return data, parts


__all__ = [
    "SCHEME",
    "body_digest",
    "canonical_request",
    "detach",
    "reassemble",
    "reassemble_tree",
    "sign_request",
]
