"""Signing identities: which keys exist, whose they are, and which image goes with each.

An identity is a key reference (``p12:…`` or ``pkcs11:…``) with the newest certificate issued
for it: a person's certificate or an agency's seal. The agency is the certificate's ``UID``
attribute (the QCVN 102:2016 code), never the caller's claim.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePath

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.layout import PkiLayout
from certs.pkcs11uri import InvalidPkcs11Uri, Pkcs11Uri
from certs.store import CertificateRecord, CertificateStore, serial_hex

from .errors import InvalidRequest, KeyNotAllowed

SIGNING_PROFILES = ("person", "seal")


@dataclass(frozen=True)
class Identity:
    """A key one may sign with, as shown to people and API clients.

    ``key_ref`` says where the key is kept (a file path, an HSM URI): the server's business
    only. What callers see is :meth:`to_dict`.
    """

    key_ref: str
    name: str  # short name: the key file's stem, e.g. seal-000.00.00.H41
    kind: str  # the certificate's profile in the CA's records: "person" or "seal"
    common_name: str
    agency_code: str | None
    subject: str
    serial: str
    not_after: dt.datetime
    revoked: bool
    image: Path | None  # blue signature or red seal PNG, if the PKI has one
    der: bytes  # the certificate

    def to_dict(self) -> dict[str, object]:
        """The key as API clients see it: its name (what ``key`` takes when signing) and its
        certificate; never the key reference, a path, a URI or a PIN source."""
        certificate = x509.load_der_x509_certificate(self.der)
        return {
            "key": self.name,
            "name": self.name,
            "kind": self.kind,
            "common_name": self.common_name,
            "agency_code": self.agency_code,
            "subject": self.subject,
            "issuer": certificate.issuer.rfc4514_string(),
            "serial": self.serial,
            "not_before": certificate.not_valid_before_utc.isoformat(),
            "not_after": self.not_after.isoformat(),
            "revoked": self.revoked,
            "sha256": hashlib.sha256(self.der).hexdigest(),
            "certificate": certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        }


def key_name(key_ref: str) -> str:
    """Short name of a key reference, safe to show to anyone: ``p12:…/seal-X.p12`` → ``seal-X``;
    a ``pkcs11:`` URI → its object label, else ``id-`` and its id in hex. Never a path, a URI
    or a PIN source: an unreadable reference gets ``key-`` and a digest of it."""
    scheme, _, rest = key_ref.partition(":")
    if scheme == "p12" and PurePath(rest).stem:
        return PurePath(rest).stem
    if scheme == "pkcs11":
        try:
            uri = Pkcs11Uri.parse(key_ref)
        except InvalidPkcs11Uri:
            uri = None
        if uri is not None and uri.object:
            return uri.object
        if uri is not None and uri.id:
            return "id-" + uri.id.hex()
    return "key-" + hashlib.sha256(key_ref.encode("utf-8", "surrogatepass")).hexdigest()[:12]


class Identities:
    """Looks identities up in the CA's records (no key is opened here)."""

    def __init__(self, store: CertificateStore, layout: PkiLayout) -> None:
        self.store = store
        self.layout = layout

    def _records(self, agency: str | None = None) -> list[CertificateRecord]:
        return [r for r in self.store.all(agency) if r.profile in SIGNING_PROFILES and r.key_ref]

    def _identity(self, record: CertificateRecord) -> Identity:
        assert record.key_ref is not None
        name = key_name(record.key_ref)
        image = self.layout.image(name)
        return Identity(
            key_ref=record.key_ref,
            name=name,
            kind=record.profile,
            common_name=record.common_name,
            agency_code=record.agency_code,
            subject=record.subject,
            serial=serial_hex(record.serial),
            not_after=record.not_after,
            revoked=record.revoked,
            image=image if image.is_file() else None,
            der=record.der,
        )

    def find(self, key_ref: str) -> Identity | None:
        """The identity of ``key_ref`` (its newest certificate), if the CA issued one."""
        matches = [r for r in self.store.for_key(key_ref) if r.profile in SIGNING_PROFILES]
        return self._identity(matches[-1]) if matches else None

    def of_agency(self, agency: str) -> list[Identity]:
        """Every current signing identity of an agency (newest certificate per key)."""
        newest: dict[str, CertificateRecord] = {}
        for record in self._records(agency):
            assert record.key_ref is not None
            newest[record.key_ref] = record
        return [self._identity(r) for r in newest.values()]

    def resolve(self, text: str) -> str:
        """A key reference from what a person types: the reference, its short name or a serial."""
        text = text.strip()
        records = self._records()
        for record in reversed(records):
            assert record.key_ref is not None
            if text in (record.key_ref, key_name(record.key_ref), serial_hex(record.serial)):
                return record.key_ref
        raise InvalidRequest(f"no signing key {text!r}: give a key reference, name or serial")

    def check_grant(self, agency: str, key_refs: list[str], kinds: tuple[str, ...]) -> None:
        """Refuse to grant keys that are not ``agency``'s own or not of an allowed kind."""
        for ref in key_refs:
            identity = self.find(ref)
            if identity is None:
                raise InvalidRequest(f"no certificate was issued for key {ref}")
            if identity.agency_code != agency:
                raise KeyNotAllowed(
                    f"key {identity.name} belongs to agency {identity.agency_code}, not {agency}"
                )
            if identity.kind not in kinds:
                raise KeyNotAllowed(
                    f"key {identity.name} is a {identity.kind} key; allowed: {', '.join(kinds)}"
                )
